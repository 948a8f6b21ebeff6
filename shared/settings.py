"""Settings every service shares, read from ``MRM_*`` environment variables and ``.env``."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.http import DEFAULT_MAX_BODY_BYTES

Role = Literal["admin", "cmo", "manager", "executor", "viewer"]


class TokenGrant(BaseModel):
    """What a bearer token stands for: a person or system (subject) and its role."""

    subject: str = Field(min_length=1)
    role: Role


class CommonSettings(BaseSettings):
    """Configuration common to all services; each service subclasses it with its own port/store."""

    # populate_by_name: code and tests may pass fields by name even where an env alias is set.
    model_config = SettingsConfigDict(
        env_prefix="MRM_", env_file=".env", extra="ignore", populate_by_name=True
    )

    kafka_bootstrap: str | None = Field(
        default=None, description="Kafka bootstrap servers; unset means the embedded broker."
    )
    topic_partitions: int = Field(default=3, ge=1, description="Partitions of created topics.")
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
