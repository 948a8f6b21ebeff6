"""Settings of the planning service."""

from __future__ import annotations

from decimal import Decimal

from pydantic import AliasChoices, Field, model_validator

from services.planning.rules import RuleDraft
from shared.events.envelope import Share
from shared.reallocation import (
    DEFAULT_ENABLED,
    DEFAULT_MIN_SPEND_SHARE,
    DEFAULT_SHARE,
    DEFAULT_UNDER_CKPI,
)
from shared.settings import CommonSettings


class PlanningSettings(CommonSettings):
    """Port: ``MRM_PLANNING_PORT`` or ``MRM_PORT``; store: ``MRM_PLANNING_DATABASE_URL`` or
    ``MRM_DATABASE_URL`` (default: a SQLite file in the data directory)."""

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

    # the default reallocation rule of a new plan reads measurement's rule settings, so one
    # environment gives both services the same rule
    default_rule_enabled: bool = Field(
        default=DEFAULT_ENABLED,
        validation_alias=AliasChoices("MRM_MEASUREMENT_REALLOCATION_ENABLED"),
        description="Whether a new plan's default reallocation rule is enabled.",
    )
    default_rule_under_ckpi: Decimal = Field(
        default=DEFAULT_UNDER_CKPI,
        ge=0,
        validation_alias=AliasChoices("MRM_MEASUREMENT_REALLOCATION_UNDER_CKPI"),
        description="The default rule moves budget from campaigns with a CKPI below this.",
    )
    default_rule_share: Share = Field(
        default=DEFAULT_SHARE,
        gt=0,
        validation_alias=AliasChoices("MRM_MEASUREMENT_REALLOCATION_SHARE"),
        description="Share of the donor's unspent budget the default rule moves.",
    )
    default_rule_min_spend_share: Share = Field(
        default=DEFAULT_MIN_SPEND_SHARE,
        validation_alias=AliasChoices("MRM_MEASUREMENT_REALLOCATION_MIN_SPEND_SHARE"),
        description="The default rule judges a campaign once it has spent this share.",
    )

    def default_rule(self) -> RuleDraft:
        """Every new plan's default reallocation rule: a live campaign whose CKPI is below
        ``UNDER_CKPI`` once it has spent ``MIN_SPEND_SHARE`` gives ``SHARE`` of its unspent
        budget to the best-scoring campaign of its line, by proposal."""
        return RuleDraft(
            kpi="ckpi",
            comparison="lt",
            threshold=self.default_rule_under_ckpi,
            min_spend_share=self.default_rule_min_spend_share,
            action="best_in_line",
            share=self.default_rule_share,
            mode="propose",
            enabled=self.default_rule_enabled,
        )

    @model_validator(mode="after")
    def _default_database(self) -> PlanningSettings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'planning.db'}"
        return self
