"""Events the measurement service publishes on ``mrm.kpi.v1``."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, model_validator

from shared import topics
from shared.events.envelope import (
    Count,
    Currency,
    Date,
    EventData,
    Identifier,
    Measure,
    Money,
    Name,
    Text,
    UtcDatetime,
)
from shared.events.planning import KpiDirection
from shared.reallocation import RuleMode


class _KpiEvent(EventData):
    topic = topics.KPI
    key_field = "campaign_id"


class KpiSnapshot(_KpiEvent):
    """The KPI values of a campaign at a moment (``None`` where undefined)."""

    event_type = "kpi.snapshot"

    campaign_id: Identifier
    plan_id: Identifier | None = None
    as_of: UtcDatetime
    kpis: dict[Identifier, Measure | None]


class _TargetEvent(_KpiEvent):
    campaign_id: Identifier
    plan_id: Identifier | None = None
    target_id: Identifier
    kpi: Identifier
    target: Measure
    actual: Measure | None
    direction: KpiDirection


class KpiTargetBreached(_TargetEvent):
    """A KPI moved beyond its target's tolerance."""

    event_type = "kpi.target_breached"


class KpiTargetRecovered(_TargetEvent):
    """A breached KPI is back within its target."""

    event_type = "kpi.target_recovered"


class BudgetReallocationProposed(_KpiEvent):
    """Measurement proposes moving budget from a campaign whose KPI meets a reallocation rule's
    condition to another campaign (``to_campaign_id``) or a budget line (``to_line_id``) of
    the plan. ``rule_id`` names the plan's rule (None: the settings' rule, for a plan with no
    rules known); with ``mode`` ``apply`` planning moves the money at once."""

    event_type = "budget.reallocation_proposed"
    key_field = "plan_id"

    plan_id: Identifier
    from_campaign_id: Identifier
    to_campaign_id: Identifier | None = None
    to_line_id: Identifier | None = None
    amount: Money
    reason: Text
    rule_id: Identifier | None = None
    mode: RuleMode = "propose"

    @model_validator(mode="after")
    def _one_recipient(self) -> Self:
        if (self.to_campaign_id is None) == (self.to_line_id is None):
            raise ValueError("exactly one of to_campaign_id and to_line_id is required")
        return self


class _SalesTargetEvent(_KpiEvent):
    key_field = "unit_id"

    target_id: Identifier
    unit_id: Identifier
    period: Identifier
    period_start: Date
    period_end: Date
    brand: Name | None = None
    target: Money
    currency: Currency
    sales: Measure
    """Sales attributed to the unit (and the units beneath it) so far, in ``currency``."""
    forecast: Measure
    """Run-rate forecast to the period's end: sales / elapsed days × period days."""
    forecast_share: Measure
    """forecast / target."""
    threshold: Measure
    """The forecast share below which a target is at risk."""
    as_of: UtcDatetime


class SalesTargetAtRisk(_SalesTargetEvent):
    """A unit's run-rate forecast fell below the configured share of its sales target."""

    event_type = "sales_target.at_risk"


class SalesTargetRecovered(_SalesTargetEvent):
    """An at-risk sales target's forecast is back at or above the configured share."""

    event_type = "sales_target.recovered"


class ModelBand(BaseModel):
    """A modelled figure: its 10th, 50th and 90th percentile (None where it cannot be told)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    p10: Measure | None = None
    p50: Measure | None = None
    p90: Measure | None = None


class CampaignModelled(_KpiEvent):
    """What a campaign was expected to give when it was approved, modelled from the campaigns
    measured before it (``match``: ``channel_brand``, ``channel`` or ``all``; ``peers``: how
    many), in ``currency`` for ``budget``. Published once per campaign."""

    event_type = "campaign.modelled"

    campaign_id: Identifier
    plan_id: Identifier | None = None
    as_of: UtcDatetime
    currency: Currency
    budget: Money
    match: Identifier
    peers: Count
    figures: dict[Identifier, ModelBand]


KPI_EVENTS: tuple[type[EventData], ...] = (
    KpiSnapshot,
    KpiTargetBreached,
    KpiTargetRecovered,
    BudgetReallocationProposed,
    SalesTargetAtRisk,
    SalesTargetRecovered,
    CampaignModelled,
)
