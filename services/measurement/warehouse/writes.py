"""Events as table rows, and the inserts: one columnar insert per table per batch.

The tables collapse repeated rows and the queries count each event_id once (see ``schema``),
so a batch inserted again — a redelivery, a retried batch — changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client

from services.measurement import domain
from services.measurement.warehouse import customers, rules
from shared.events.customers import CustomerProfileUpdated
from shared.events.envelope import Envelope, EventData
from shared.events.ingest import (
    AdMetricsReported,
    LeadStageChanged,
    SaleCompleted,
    SpendRecorded,
    TaskStatusChanged,
)
from shared.events.planning import (
    BudgetAllocated,
    BudgetLineRemoved,
    BudgetLineSet,
    BudgetReallocated,
    CampaignState,
    CampaignStatusChanged,
    DiscountLimitSet,
    KpiTargetSet,
    PlanApproved,
    PlanCreated,
    ReallocationRuleRemoved,
    ReallocationRuleSet,
    SalesTargetSet,
    SalesUnitSet,
)

_TARGET_PLACES = Decimal("1e-10")
_WEIGHT_PLACES = Decimal("1e-6")


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A validated event and where it was read from (topic, partition, offset)."""

    envelope: Envelope
    data: EventData
    topic: str
    partition: int
    offset: int
    source: Any = None
    """The Kafka record it was decoded from, if any (to dead-letter it as it arrived)."""


_META = "event_id occurred_at source _topic _partition _offset"

COLUMNS: dict[str, tuple[str, ...]] = {
    table: tuple(names.split())
    for table, names in {
        "spend": f"{_META} campaign_id channel amount currency",
        "ad_metrics": f"{_META} campaign_id channel impressions clicks",
        "lead_events": f"{_META} lead_id campaign_id channel stage stage_rank customer_id "
        "expected_value",
        "sales": f"{_META} order_id customer_id campaign_id channel amount discount_amount "
        "currency partner_id rep_id region product_id brand list_price discount_reason sale_kind "
        "outlet",
        "tasks": f"{_META} campaign_id stage_id status assignee comment",
        "plans": "plan_id name period_start period_end currency owner status updated_at event_id "
        "budget",
        "plan_approvals": "plan_id approved_by approved_at event_id",
        "campaigns": "campaign_id plan_id name channel brand owner budget currency start_date "
        "end_date gross_margin status version updated_at event_id line_id sales_unit_id "
        "target_segment",
        "campaign_status": "campaign_id plan_id status version updated_at event_id",
        "campaign_budgets": "campaign_id plan_id budget currency updated_at event_id",
        "kpi_targets": "target_id campaign_id kpi target direction weight tolerance updated_at "
        "event_id",
        "sales_units": "unit_id parent_id kind name owner code updated_at event_id",
        "sales_targets": "target_id unit_id period period_start period_end brand amount currency "
        "version updated_at event_id",
        "budget_lines": "line_id plan_id parent_id version updated_at event_id name brand channel "
        "region partner amount currency months",
        "budget_line_removals": "line_id plan_id removed_at event_id",
        "discount_limits": "scope_kind scope_id plan_id promo_fund max_discount_rate currency "
        "version updated_at event_id",
        "reallocation_rules": rules.COLUMNS,
        "customer_profiles": customers.COLUMNS,
    }.items()
}
"""Insert column order of every table fed from events."""

Row = tuple[str, tuple[Any, ...]]


def _meta(event: StoredEvent) -> tuple[Any, ...]:
    env = event.envelope
    return (env.event_id, env.occurred_at, env.source, event.topic, event.partition, event.offset)


def _spend(e: StoredEvent, d: SpendRecorded) -> list[Row]:
    return [("spend", (*_meta(e), d.campaign_id, d.channel, d.amount, d.currency))]


def _ad_metrics(e: StoredEvent, d: AdMetricsReported) -> list[Row]:
    return [("ad_metrics", (*_meta(e), d.campaign_id, d.channel, d.impressions, d.clicks))]


def _lead(e: StoredEvent, d: LeadStageChanged) -> list[Row]:
    rank = domain.stage_rank(d.stage)
    values = (d.lead_id, d.campaign_id or "", d.channel, d.stage, rank, d.customer_id or "")
    return [("lead_events", (*_meta(e), *values, d.expected_value))]


def _sale(e: StoredEvent, d: SaleCompleted) -> list[Row]:
    order = (d.order_id, d.customer_id, d.campaign_id or "", d.channel or "")
    money = (d.amount, d.discount_amount, d.currency)
    units = tuple(unit or "" for unit in (d.partner_id, d.rep_id, d.region, d.product_id, d.brand))
    pricing = (d.list_price, d.discount_reason or "", d.sale_kind or "")
    return [("sales", (*_meta(e), *order, *money, *units, *pricing, d.outlet or ""))]


def _task(e: StoredEvent, d: TaskStatusChanged) -> list[Row]:
    values = (d.campaign_id, d.stage_id, d.status, d.assignee or "", d.comment or "")
    return [("tasks", (*_meta(e), *values))]


def _plan(e: StoredEvent, d: PlanCreated) -> list[Row]:
    at, eid = e.envelope.occurred_at, e.envelope.event_id
    values = (d.plan_id, d.name, d.period_start, d.period_end, d.currency, d.owner, d.status)
    return [("plans", (*values, at, eid, d.budget))]


def _plan_approved(e: StoredEvent, d: PlanApproved) -> list[Row]:
    return [
        ("plan_approvals", (d.plan_id, d.approved_by, e.envelope.occurred_at, e.envelope.event_id))
    ]


def _campaign(e: StoredEvent, d: CampaignState) -> list[Row]:
    at, eid = e.envelope.occurred_at, e.envelope.event_id
    margin = d.gross_margin.quantize(_WEIGHT_PLACES)
    state = (d.campaign_id, d.plan_id, d.name, d.channel, d.brand, d.owner, d.budget)
    dates = (d.currency, d.start_date, d.end_date, margin, d.status, d.version)
    optional = (d.line_id or "", d.sales_unit_id or "", d.target_segment or "")
    return [
        ("campaigns", (*state, *dates, at, eid, *optional)),
        ("campaign_status", (d.campaign_id, d.plan_id, d.status, d.version, at, eid)),
        ("campaign_budgets", (d.campaign_id, d.plan_id, d.budget, d.currency, at, eid)),
    ]


def _status(e: StoredEvent, d: CampaignStatusChanged) -> list[Row]:
    at, eid = e.envelope.occurred_at, e.envelope.event_id
    return [("campaign_status", (d.campaign_id, d.plan_id, d.status, d.version, at, eid))]


def _budget(e: StoredEvent, d: BudgetAllocated) -> list[Row]:
    at, eid = e.envelope.occurred_at, e.envelope.event_id
    return [("campaign_budgets", (d.campaign_id, d.plan_id, d.amount, d.currency, at, eid))]


def _reallocated(e: StoredEvent, d: BudgetReallocated) -> list[Row]:
    at, eid = e.envelope.occurred_at, e.envelope.event_id
    rows: list[Row] = [
        ("campaign_budgets", (d.from_campaign_id, d.plan_id, d.from_budget, d.currency, at, eid))
    ]
    if d.to_campaign_id is not None:  # else money went back to a line (budget_line.set)
        rows.append(
            ("campaign_budgets", (d.to_campaign_id, d.plan_id, d.to_budget, d.currency, at, eid))
        )
    return rows


def _target(e: StoredEvent, d: KpiTargetSet) -> list[Row]:
    values = (
        d.target_id,
        d.campaign_id,
        d.kpi,
        d.target.quantize(_TARGET_PLACES),
        d.direction,
        d.weight.quantize(_WEIGHT_PLACES),
        d.tolerance.quantize(_WEIGHT_PLACES),
    )
    return [("kpi_targets", (*values, e.envelope.occurred_at, e.envelope.event_id))]


def _sales_unit(e: StoredEvent, d: SalesUnitSet) -> list[Row]:
    values = (d.unit_id, d.parent_id or "", d.kind, d.name, d.owner, d.code or "")
    return [("sales_units", (*values, e.envelope.occurred_at, e.envelope.event_id))]


def _sales_target(e: StoredEvent, d: SalesTargetSet) -> list[Row]:
    period = (d.target_id, d.unit_id, d.period, d.period_start, d.period_end, d.brand or "")
    values = (*period, d.amount, d.currency, d.version)
    return [("sales_targets", (*values, e.envelope.occurred_at, e.envelope.event_id))]


def _line(e: StoredEvent, d: BudgetLineSet) -> list[Row]:
    at, eid = e.envelope.occurred_at, e.envelope.event_id
    tree = (d.line_id, d.plan_id, d.parent_id or "", d.version, at, eid)
    attributes = tuple(value or "" for value in (d.brand, d.channel, d.region, d.partner))
    money = (d.amount, d.currency, dict(d.months or {}))
    return [("budget_lines", (*tree, d.name, *attributes, *money))]


def _line_removed(e: StoredEvent, d: BudgetLineRemoved) -> list[Row]:
    at, eid = e.envelope.occurred_at, e.envelope.event_id
    return [("budget_line_removals", (d.line_id, d.plan_id, at, eid))]


def _limit(e: StoredEvent, d: DiscountLimitSet) -> list[Row]:
    at, eid = e.envelope.occurred_at, e.envelope.event_id
    limits = (d.promo_fund, d.max_discount_rate, d.currency, d.version)
    return [("discount_limits", (d.scope_kind, d.scope_id, d.plan_id, *limits, at, eid))]


def _rule(e: StoredEvent, d: ReallocationRuleSet) -> list[Row]:
    at, eid = e.envelope.occurred_at, e.envelope.event_id
    condition = (d.kpi, d.comparison, d.threshold, d.min_spend_share, d.hold_s, d.hysteresis)
    action = (d.action, d.target_id or "", d.recipient_threshold, d.share, d.min_amount, d.mode)
    flags = (int(d.enabled), d.scope_line_id or "", int(d.is_default), 0, d.version)
    return [("reallocation_rules", (d.rule_id, d.plan_id, *condition, *action, *flags, at, eid))]


def _rule_removed(e: StoredEvent, d: ReallocationRuleRemoved) -> list[Row]:
    at, eid = e.envelope.occurred_at, e.envelope.event_id
    zero = Decimal(0)
    condition = ("", "lt", zero, zero, 0, zero)
    action = ("best_in_line", "", None, zero, zero, "propose")
    flags = (0, "", 0, 1, rules.REMOVED_VERSION)
    return [("reallocation_rules", (d.rule_id, d.plan_id, *condition, *action, *flags, at, eid))]


def _profile(e: StoredEvent, d: CustomerProfileUpdated) -> list[Row]:
    at, eid = e.envelope.occurred_at, e.envelope.event_id
    fields = tuple(value or "" for value in (d.industry, d.size, d.region, d.age_band))
    return [("customer_profiles", (d.customer_id, d.version, *fields, dict(d.attributes), at, eid))]


_ROWS: dict[str, Callable[[StoredEvent, Any], list[Row]]] = {
    "spend.recorded": _spend,
    "ad.metrics_reported": _ad_metrics,
    "lead.stage_changed": _lead,
    "sale.completed": _sale,
    "task.status_changed": _task,
    "plan.created": _plan,
    "plan.updated": _plan,
    "plan.approved": _plan_approved,
    "campaign.planned": _campaign,
    "campaign.updated": _campaign,
    "campaign.status_changed": _status,
    "budget.allocated": _budget,
    "budget.reallocated": _reallocated,
    "kpi_target.set": _target,
    "sales_unit.set": _sales_unit,
    "sales_target.set": _sales_target,
    "budget_line.set": _line,
    "budget_line.removed": _line_removed,
    "discount_limit.set": _limit,
    "reallocation_rule.set": _rule,
    "reallocation_rule.removed": _rule_removed,
    "customer.profile_updated": _profile,
}
"""Event types the warehouse stores; every other type is ignored by ``insert_events``."""


def rows_by_table(events: Iterable[StoredEvent]) -> dict[str, list[tuple[Any, ...]]]:
    """Group the rows the events produce by table (events not stored here are skipped)."""
    tables: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for event in events:
        build = _ROWS.get(event.data.event_type)
        if build is None:
            continue
        for table, row in build(event, event.data):
            tables[table].append(row)
    return tables


def insert_events(client: Client, *, events: Sequence[StoredEvent]) -> dict[str, int]:
    """Insert a batch columnar, one insert per table; return the row count per table."""
    counts = {}
    for table, rows in rows_by_table(events).items():
        columns = [list(column) for column in zip(*rows, strict=True)]
        client.insert(table, columns, column_names=COLUMNS[table], column_oriented=True)
        counts[table] = len(rows)
    return counts


def insert_batch(
    client: Client, *, tables: Mapping[str, Any], events: Sequence[StoredEvent] = ()
) -> dict[str, int]:
    """Insert Arrow tables (``columns.to_arrow_tables``) and decoded events; rows per table."""
    counts: dict[str, int] = defaultdict(int)
    for table, arrow in tables.items():
        client.insert_arrow(table, arrow)
        counts[table] += arrow.num_rows
    for table, count in insert_events(client, events=events).items():
        counts[table] += count
    return dict(counts)
