"""Settings of the planning service."""

from __future__ import annotations

from pydantic import AliasChoices, Field, model_validator

from shared.settings import ReallocationSettings
from shared.sql_service import SqlStoreSettings


class PlanningSettings(ReallocationSettings, SqlStoreSettings):
    """Port: ``MRM_PLANNING_PORT`` or ``MRM_PORT``; store: ``MRM_PLANNING_DATABASE_URL`` or
    ``MRM_DATABASE_URL`` (default: a SQLite file in the data directory); the default
    reallocation rule of a new plan reads measurement's rule settings
    (``ReallocationSettings``)."""

    port: int = Field(default=8001, validation_alias=AliasChoices("MRM_PLANNING_PORT", "MRM_PORT"))
    database_url: str = Field(
        default="",
        validation_alias=AliasChoices("MRM_PLANNING_DATABASE_URL", "MRM_DATABASE_URL"),
    )
    consumer_group: str = Field(
        default="mrm-planning",
        min_length=1,
        validation_alias=AliasChoices("MRM_PLANNING_CONSUMER_GROUP"),
        description="Consumer group of the service's subscribers (shared by its replicas).",
    )

    @model_validator(mode="after")
    def _default_database(self) -> PlanningSettings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'planning.db'}"
        return self
