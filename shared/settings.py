"""Settings every service shares, read from ``MRM_*`` environment variables and ``.env``."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal, Self

from pydantic import AliasChoices, BaseModel, Field, model_validator
from pydantic_settings import SettingsConfigDict

from shared import reallocation
from shared.http import DEFAULT_MAX_BODY_BYTES
from shared.kafka_settings import KafkaSettings

Role = Literal["admin", "cmo", "manager", "executor", "viewer"]


class TokenGrant(BaseModel):
    """What a bearer token stands for: a person or system (subject) and its role."""

    subject: str = Field(min_length=1)
    role: Role


class CommonSettings(KafkaSettings):
    """Configuration common to all services; each service subclasses it with its own port/store."""

    # populate_by_name: code and tests may pass fields by name even where an env alias is set.
    model_config = SettingsConfigDict(
        env_prefix="MRM_", env_file=".env", extra="ignore", populate_by_name=True
    )

    kafka_bootstrap: str | None = Field(
        default=None, description="Kafka bootstrap servers; unset means the embedded broker."
    )
    kafka_fetch_max_wait_ms: int = Field(
        default=100,
        ge=1,
        le=30000,
        description="Longest a fetch waits at the broker for new events (bounds their delay).",
    )
    consumer_max_attempts: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Attempts at a message whose handler fails with an error that is neither "
        "invalid data nor an outage, before it is dead-lettered.",
    )
    consumer_stall_after_s: float = Field(
        default=60.0,
        gt=0,
        description="Lag without progress for this long marks a partition stalled (/ready 503).",
    )
    tokens: dict[str, TokenGrant] = Field(
        default_factory=dict,
        description='Bearer tokens as JSON: {"<token>": {"subject": "ann", "role": "manager"}}.',
    )
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$", description="Default currency.")
    fx_rates: dict[str, Decimal] = Field(
        default_factory=dict,
        description='Rates to the default currency as JSON, e.g. {"EUR": "1.08"}.',
    )
    http_max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES,
        ge=1024,
        description="Largest HTTP request body read (bytes); a larger one gets 413.",
    )
    data_dir: Path = Field(default=Path(".mrm"), description="Where embedded data files live.")
    host: str = Field(default="127.0.0.1", description="Interface the HTTP server binds.")
    log_level: str = Field(default="INFO")
    log_json: bool | None = Field(default=None, description="JSON logs; default: when no TTY.")

    @property
    def bootstrap(self) -> str:
        """The bootstrap servers; services are always started with one set."""
        if not self.kafka_bootstrap:
            raise RuntimeError("MRM_KAFKA_BOOTSTRAP is not set (use `mrm up` for the embedded run)")
        return self.kafka_bootstrap


class ReallocationSettings(CommonSettings):
    """The ``MRM_MEASUREMENT_REALLOCATION_*`` settings: measurement's rule for a plan it knows
    no rule of, and the default rule planning gives every new plan — one environment gives
    both services the same rule."""

    reallocation_enabled: bool = Field(
        default=reallocation.DEFAULT_ENABLED,
        validation_alias=AliasChoices("MRM_MEASUREMENT_REALLOCATION_ENABLED"),
        description="Whether the default reallocation rule is enabled.",
    )
    reallocation_under_ckpi: Decimal = Field(
        default=reallocation.DEFAULT_UNDER_CKPI,
        ge=0,
        validation_alias=AliasChoices("MRM_MEASUREMENT_REALLOCATION_UNDER_CKPI"),
        description="A campaign with a CKPI below this under-performs (gives budget).",
    )
    reallocation_over_ckpi: Decimal = Field(
        default=reallocation.DEFAULT_OVER_CKPI,
        ge=0,
        le=150,
        validation_alias=AliasChoices("MRM_MEASUREMENT_REALLOCATION_OVER_CKPI"),
        description="A campaign receives budget only with a CKPI of at least this.",
    )
    reallocation_hysteresis: Decimal = Field(
        default=reallocation.DEFAULT_HYSTERESIS,
        ge=0,
        validation_alias=AliasChoices("MRM_MEASUREMENT_REALLOCATION_HYSTERESIS"),
        description="CKPI points past the threshold that end an under-performance episode.",
    )
    reallocation_share: Decimal = Field(
        default=reallocation.DEFAULT_SHARE,
        gt=0,
        le=1,
        validation_alias=AliasChoices("MRM_MEASUREMENT_REALLOCATION_SHARE"),
        description="Share of the donor's unspent budget (budget − spend) moved.",
    )
    reallocation_min_amount: Decimal = Field(
        default=reallocation.DEFAULT_MIN_AMOUNT,
        ge=0,
        validation_alias=AliasChoices("MRM_MEASUREMENT_REALLOCATION_MIN_AMOUNT"),
        description="Smaller moves are not proposed.",
    )
    reallocation_min_spend_share: Decimal = Field(
        default=reallocation.DEFAULT_MIN_SPEND_SHARE,
        ge=0,
        le=1,
        validation_alias=AliasChoices("MRM_MEASUREMENT_REALLOCATION_MIN_SPEND_SHARE"),
        description="A campaign is judged by the rule once it has spent this share of its budget.",
    )

    def default_rule(self) -> reallocation.RuleSpec:
        """The default reallocation rule these settings describe."""
        return reallocation.default_rule(
            under_ckpi=self.reallocation_under_ckpi,
            over_ckpi=self.reallocation_over_ckpi,
            hysteresis=self.reallocation_hysteresis,
            share=self.reallocation_share,
            min_amount=self.reallocation_min_amount,
            min_spend_share=self.reallocation_min_spend_share,
            enabled=self.reallocation_enabled,
        )

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> Self:
        if self.reallocation_under_ckpi >= self.reallocation_over_ckpi:
            raise ValueError(
                "reallocation_under_ckpi must be below reallocation_over_ckpi"
                f" ({self.reallocation_under_ckpi} ≥ {self.reallocation_over_ckpi})"
            )
        return self
