"""Events the measurement service publishes on ``mrm.kpi.v1``."""

from __future__ import annotations

from shared import topics
from shared.events.envelope import EventData, Identifier, Measure, Money, Text, UtcDatetime
from shared.events.planning import KpiDirection


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
    """Measurement proposes moving budget from an under- to an over-performing campaign."""

    event_type = "budget.reallocation_proposed"
    key_field = "plan_id"

    plan_id: Identifier
    from_campaign_id: Identifier
    to_campaign_id: Identifier
    amount: Money
    reason: Text


KPI_EVENTS: tuple[type[EventData], ...] = (
    KpiSnapshot,
    KpiTargetBreached,
    KpiTargetRecovered,
    BudgetReallocationProposed,
)
