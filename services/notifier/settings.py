"""Configuration of the notifier: port, database, SMTP, webhooks and the retry schedule."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from services.notifier.senders import webhook_key
from shared.sql_service import SqlStoreSettings


class NotifierSettings(SqlStoreSettings):
    """Settings of the notifier service (``MRM_*`` environment variables)."""

    model_config = SettingsConfigDict(populate_by_name=True)

    port: int = Field(
        default=8004,
        ge=1,
        le=65535,
        validation_alias=AliasChoices("MRM_NOTIFIER_PORT", "MRM_PORT"),
    )
    database_url: str = Field(
        default="",
        validation_alias=AliasChoices("MRM_NOTIFIER_DATABASE_URL", "MRM_DATABASE_URL"),
        description="SQLAlchemy URL; default: a SQLite file notifier.db in data_dir.",
    )
    consumer_group: str = Field(
        default="mrm-notifier",
        min_length=1,
        validation_alias=AliasChoices("MRM_NOTIFIER_CONSUMER_GROUP"),
    )

    smtp_host: str = Field(default="127.0.0.1", description="SMTP server (MRM_SMTP_HOST).")
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = Field(default="mrm-notifier@localhost", min_length=3)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_s: float = Field(default=30.0, gt=0)

    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_secret: SecretStr | None = Field(
        default=None,
        description=(
            "When set, webhooks are signed (Standard Webhooks: webhook-id, webhook-timestamp, "
            "webhook-signature); a whsec_<base64> secret or any other string (its UTF-8 bytes)."
        ),
    )
    webhook_allow_private: bool = Field(
        default=False,
        validation_alias=AliasChoices("MRM_NOTIFIER_WEBHOOK_ALLOW_PRIVATE"),
        description=(
            "Allow webhook URLs on loopback, link-local and private addresses (development); "
            "by default they are refused when set and again, after DNS resolution, at each send."
        ),
    )

    max_attempts: int = Field(
        default=8,
        ge=1,
        le=100,
        validation_alias=AliasChoices("MRM_NOTIFIER_MAX_ATTEMPTS"),
    )
    retry_initial_s: float = Field(
        default=1.0,
        gt=0,
        validation_alias=AliasChoices("MRM_NOTIFIER_RETRY_INITIAL_S"),
    )
    retry_max_s: float = Field(
        default=300.0,
        gt=0,
        validation_alias=AliasChoices("MRM_NOTIFIER_RETRY_MAX_S"),
    )
    poll_interval_s: float = Field(
        default=1.0,
        gt=0,
        validation_alias=AliasChoices("MRM_NOTIFIER_POLL_INTERVAL_S"),
        description="How often the delivery worker looks for due notifications without a wake-up.",
    )
    delivery_concurrency: int = Field(
        default=10,
        ge=1,
        validation_alias=AliasChoices("MRM_NOTIFIER_DELIVERY_CONCURRENCY"),
    )

    parked_max_age_h: float = Field(
        default=168.0,
        gt=0,
        validation_alias=AliasChoices("MRM_NOTIFIER_PARKED_MAX_AGE_H"),
        description=(
            "A cause waiting longer than this for its stage, campaign or plan to be known is "
            "dropped (logged as parked_cause_expired and counted)."
        ),
    )

    @field_validator("webhook_secret")
    @classmethod
    def _usable_secret(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None:
            try:
                webhook_key(secret.get_secret_value())
            except ValueError as exc:
                raise ValueError("a whsec_ secret must be followed by base64") from exc
        return secret

    @model_validator(mode="after")
    def _default_database_url(self) -> NotifierSettings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'notifier.db'}"
        return self
