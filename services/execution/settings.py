"""Configuration of the execution service (``MRM_*`` environment variables)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import SettingsConfigDict

from shared.sql_service import SqlStoreSettings


class ExecutionSettings(SqlStoreSettings):
    """Common settings plus the execution service's port, database and scheduler knobs."""

    model_config = SettingsConfigDict(validate_by_name=True)

    port: int = Field(
        default=8002,
        ge=1,
        le=65535,
        validation_alias=AliasChoices("MRM_EXECUTION_PORT", "MRM_PORT"),
        description="HTTP port.",
    )
    database_url: str = Field(
        default="",
        validation_alias=AliasChoices("MRM_EXECUTION_DATABASE_URL", "MRM_DATABASE_URL"),
        description="SQLAlchemy URL; default: a SQLite file execution.db in data_dir.",
    )
    consumer_group: str = Field(
        default="mrm-execution",
        min_length=1,
        validation_alias=AliasChoices("MRM_EXECUTION_CONSUMER_GROUP"),
        description="Consumer group of the service's subscribers (shared by its replicas).",
    )
    scheduler_interval_s: float = Field(
        default=30.0,
        gt=0,
        validation_alias=AliasChoices("MRM_EXECUTION_SCHEDULER_INTERVAL_S"),
        description="Seconds between two deadline / forecast checks.",
    )
    deadline_warning_hours: float = Field(
        default=48.0,
        gt=0,
        validation_alias=AliasChoices("MRM_EXECUTION_DEADLINE_WARNING_HOURS"),
        description="How long before a stage's deadline its executor is reminded.",
    )

    @model_validator(mode="after")
    def _default_database_url(self) -> ExecutionSettings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'execution.db'}"
        return self
