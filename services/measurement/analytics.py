"""ClickHouse adapter of the measurement service: schema migrations, columnar inserts, KPI queries.

The same SQL runs on a ClickHouse server (``http(s)://`` URL) and on the in-process chDB engine
(``chdb:///path``). Tables:

* raw streams ``spend``, ``ad_metrics``, ``lead_events``, ``sales``, ``tasks`` —
  ReplacingMergeTree whose sorting key ends in ``event_id``, so a redelivered event collapses
  on merge;
* dimensions fed from ``mrm.planning.v1``: ``plans`` + ``plan_approvals``, ``campaigns`` (full
  state, by ``version``), ``campaign_status`` (by ``version``), ``campaign_budgets`` (by
  ``occurred_at``, since ``budget.reallocated`` carries no version), ``kpi_targets``; the views
  ``campaigns_current`` / ``plans_current`` join them into the latest state;
* ``alert_state`` — breach state of every KPI target, for hysteresis across restarts.

Counting each event once *before* background merges: sums over spend, ad metrics and sales read
``FINAL``; the funnel needs no FINAL because it only takes ``max(stage_rank)`` per lead, and the
first sale of a customer is an ``argMin`` — both are unaffected by duplicates.

Query functions use the client's current database (``connect`` selects it); ``migrate`` names
it explicitly. Timestamps are bound as epoch milliseconds, so no session time zone is involved.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from services.measurement import domain
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
    BudgetReallocated,
    CampaignState,
    CampaignStatusChanged,
    KpiTargetSet,
    PlanApproved,
    PlanCreated,
)

DEFAULT_DATABASE = "mrm"
_EPOCH_MS_MIN = 0
_EPOCH_MS_MAX = 10_413_792_000_000  # 2300-01-01, beyond any DateTime64 value we store
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


# --------------------------------------------------------------------------------------------
# connection and migrations
# --------------------------------------------------------------------------------------------


def connect(url: str, *, database: str = DEFAULT_DATABASE) -> Client:
    """A client for ``chdb:///path`` (directory created) or ``http(s)://…``, using ``database``."""
    parsed = urlparse(url)
    if parsed.scheme == "chdb" and parsed.path and not parsed.netloc:
        os.makedirs(parsed.path, exist_ok=True)
    client = clickhouse_connect.get_client(dsn=url)
    client.command(f"CREATE DATABASE IF NOT EXISTS {_ident(database)}")
    client.database = database
    return client


def ping(client: Client) -> bool:
    """True when ClickHouse answers a trivial query (readiness)."""
    try:
        return bool(client.command("SELECT 1"))
    except (ClickHouseError, OSError, RuntimeError):
        return False


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"database: invalid identifier {name!r}")
    return name


_RAW_META = """
    source LowCardinality(String),
    _topic LowCardinality(String),
    _partition Int32,
    _offset Int64,
    _ingested_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC')
"""

_RAW_ENGINE = "ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(occurred_at)"

MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "raw event streams",
        (
            f"""CREATE TABLE IF NOT EXISTS {{db}}.spend (
                event_id UUID, occurred_at DateTime64(3, 'UTC'),
                campaign_id String, channel LowCardinality(String),
                amount Decimal(18, 2), currency LowCardinality(String), {_RAW_META}
            ) {_RAW_ENGINE} ORDER BY (campaign_id, event_id)""",
            f"""CREATE TABLE IF NOT EXISTS {{db}}.ad_metrics (
                event_id UUID, occurred_at DateTime64(3, 'UTC'),
                campaign_id String, channel LowCardinality(String),
                impressions UInt64, clicks UInt64, {_RAW_META}
            ) {_RAW_ENGINE} ORDER BY (campaign_id, event_id)""",
            f"""CREATE TABLE IF NOT EXISTS {{db}}.lead_events (
                event_id UUID, occurred_at DateTime64(3, 'UTC'),
                lead_id String, campaign_id String, channel LowCardinality(String),
                stage LowCardinality(String), stage_rank Int8, customer_id String,
                expected_value Nullable(Decimal(18, 2)), {_RAW_META}
            ) {_RAW_ENGINE} ORDER BY (campaign_id, lead_id, event_id)""",
            f"""CREATE TABLE IF NOT EXISTS {{db}}.sales (
                event_id UUID, occurred_at DateTime64(3, 'UTC'),
                order_id String, customer_id String, campaign_id String,
                channel LowCardinality(String), amount Decimal(18, 2),
                discount_amount Decimal(18, 2), currency LowCardinality(String), {_RAW_META},
                INDEX customer_idx customer_id TYPE bloom_filter GRANULARITY 4
            ) {_RAW_ENGINE} ORDER BY (campaign_id, customer_id, event_id)""",
            f"""CREATE TABLE IF NOT EXISTS {{db}}.tasks (
                event_id UUID, occurred_at DateTime64(3, 'UTC'),
                campaign_id String, stage_id String, status LowCardinality(String),
                assignee String, comment String, {_RAW_META}
            ) {_RAW_ENGINE} ORDER BY (campaign_id, event_id)""",
        ),
    ),
    (
        2,
        "planning dimensions and alert state",
        (
            """CREATE TABLE IF NOT EXISTS {db}.plans (
                plan_id String, name String, period_start Date, period_end Date,
                currency LowCardinality(String), owner String, status LowCardinality(String),
                updated_at DateTime64(3, 'UTC'), event_id UUID
            ) ENGINE = ReplacingMergeTree(updated_at) ORDER BY plan_id""",
            """CREATE TABLE IF NOT EXISTS {db}.plan_approvals (
                plan_id String, approved_by String, approved_at DateTime64(3, 'UTC'),
                event_id UUID
            ) ENGINE = ReplacingMergeTree(approved_at) ORDER BY plan_id""",
            """CREATE TABLE IF NOT EXISTS {db}.campaigns (
                campaign_id String, plan_id String, name String,
                channel LowCardinality(String), brand Nullable(String), owner String,
                budget Decimal(18, 2), currency LowCardinality(String),
                start_date Date, end_date Date, gross_margin Decimal(18, 6),
                status LowCardinality(String), version UInt64,
                updated_at DateTime64(3, 'UTC'), event_id UUID
            ) ENGINE = ReplacingMergeTree(version) ORDER BY campaign_id""",
            """CREATE TABLE IF NOT EXISTS {db}.campaign_status (
                campaign_id String, plan_id String, status LowCardinality(String),
                version UInt64, updated_at DateTime64(3, 'UTC'), event_id UUID
            ) ENGINE = ReplacingMergeTree(version) ORDER BY campaign_id""",
            """CREATE TABLE IF NOT EXISTS {db}.campaign_budgets (
                campaign_id String, plan_id String, budget Decimal(18, 2),
                currency LowCardinality(String), updated_at DateTime64(3, 'UTC'), event_id UUID
            ) ENGINE = ReplacingMergeTree(updated_at) ORDER BY campaign_id""",
            """CREATE TABLE IF NOT EXISTS {db}.kpi_targets (
                target_id String, campaign_id String, kpi LowCardinality(String),
                target Decimal(38, 10), direction LowCardinality(String),
                weight Decimal(18, 6), tolerance Decimal(18, 6),
                updated_at DateTime64(3, 'UTC'), event_id UUID
            ) ENGINE = ReplacingMergeTree(updated_at) ORDER BY target_id""",
            """CREATE TABLE IF NOT EXISTS {db}.alert_state (
                campaign_id String, target_id String, breached UInt8,
                changed_at DateTime64(3, 'UTC'), version UInt64
            ) ENGINE = ReplacingMergeTree(version) ORDER BY (campaign_id, target_id)""",
            """CREATE VIEW IF NOT EXISTS {db}.campaigns_current AS
            SELECT c.campaign_id AS campaign_id, c.plan_id AS plan_id, c.name AS name,
                   c.channel AS channel, c.brand AS brand, c.owner AS owner,
                   if(b.campaign_id = '', c.budget, b.budget) AS budget,
                   c.currency AS currency, c.start_date AS start_date, c.end_date AS end_date,
                   c.gross_margin AS gross_margin,
                   if(s.campaign_id = '' OR s.version < c.version, c.status, s.status) AS status,
                   greatest(c.version, s.version) AS version
            FROM (SELECT * FROM {db}.campaigns FINAL) AS c
            LEFT ANY JOIN (SELECT * FROM {db}.campaign_status FINAL) AS s
                ON s.campaign_id = c.campaign_id
            LEFT ANY JOIN (SELECT * FROM {db}.campaign_budgets FINAL) AS b
                ON b.campaign_id = c.campaign_id""",
            """CREATE VIEW IF NOT EXISTS {db}.plans_current AS
            SELECT p.plan_id AS plan_id, p.name AS name, p.period_start AS period_start,
                   p.period_end AS period_end, p.currency AS currency, p.owner AS owner,
                   if(a.plan_id = '', p.status, 'approved') AS status,
                   a.approved_by AS approved_by
            FROM (SELECT * FROM {db}.plans FINAL) AS p
            LEFT ANY JOIN (SELECT * FROM {db}.plan_approvals FINAL) AS a
                ON a.plan_id = p.plan_id""",
        ),
    ),
)
"""(version, name, DDL statements) in order; each statement is idempotent on its own."""


def migrate(client: Client, *, database: str = DEFAULT_DATABASE) -> list[int]:
    """Apply the migrations not yet recorded in ``schema_migrations``; return their versions."""
    db = _ident(database)
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    client.command(
        f"""CREATE TABLE IF NOT EXISTS {db}.schema_migrations (
            version UInt32, name String,
            applied_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC')
        ) ENGINE = ReplacingMergeTree ORDER BY version"""
    )
    done = {
        row[0] for row in client.query(f"SELECT version FROM {db}.schema_migrations").result_rows
    }
    applied = []
    for version, name, statements in MIGRATIONS:
        if version in done:
            continue
        for statement in statements:
            client.command(statement.format(db=db))
        client.insert(
            f"{db}.schema_migrations", [[version, name]], column_names=["version", "name"]
        )
        applied.append(version)
    return applied


# --------------------------------------------------------------------------------------------
# inserts
# --------------------------------------------------------------------------------------------

_META = "event_id occurred_at source _topic _partition _offset"

COLUMNS: dict[str, tuple[str, ...]] = {
    table: tuple(names.split())
    for table, names in {
        "spend": f"{_META} campaign_id channel amount currency",
        "ad_metrics": f"{_META} campaign_id channel impressions clicks",
        "lead_events": f"{_META} lead_id campaign_id channel stage stage_rank customer_id "
        "expected_value",
        "sales": f"{_META} order_id customer_id campaign_id channel amount discount_amount "
        "currency",
        "tasks": f"{_META} campaign_id stage_id status assignee comment",
        "plans": "plan_id name period_start period_end currency owner status updated_at event_id",
        "plan_approvals": "plan_id approved_by approved_at event_id",
        "campaigns": "campaign_id plan_id name channel brand owner budget currency start_date "
        "end_date gross_margin status version updated_at event_id",
        "campaign_status": "campaign_id plan_id status version updated_at event_id",
        "campaign_budgets": "campaign_id plan_id budget currency updated_at event_id",
        "kpi_targets": "target_id campaign_id kpi target direction weight tolerance updated_at "
        "event_id",
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
    values = (d.order_id, d.customer_id, d.campaign_id or "", d.channel or "")
    return [("sales", (*_meta(e), *values, d.amount, d.discount_amount, d.currency))]


def _task(e: StoredEvent, d: TaskStatusChanged) -> list[Row]:
    values = (d.campaign_id, d.stage_id, d.status, d.assignee or "", d.comment or "")
    return [("tasks", (*_meta(e), *values))]


def _plan(e: StoredEvent, d: PlanCreated) -> list[Row]:
    at, eid = e.envelope.occurred_at, e.envelope.event_id
    values = (d.plan_id, d.name, d.period_start, d.period_end, d.currency, d.owner, d.status)
    return [("plans", (*values, at, eid))]


def _plan_approved(e: StoredEvent, d: PlanApproved) -> list[Row]:
    return [
        ("plan_approvals", (d.plan_id, d.approved_by, e.envelope.occurred_at, e.envelope.event_id))
    ]


def _campaign(e: StoredEvent, d: CampaignState) -> list[Row]:
    at, eid = e.envelope.occurred_at, e.envelope.event_id
    margin = d.gross_margin.quantize(_WEIGHT_PLACES)
    state = (d.campaign_id, d.plan_id, d.name, d.channel, d.brand, d.owner, d.budget)
    dates = (d.currency, d.start_date, d.end_date, margin, d.status, d.version)
    return [
        ("campaigns", (*state, *dates, at, eid)),
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
    return [
        ("campaign_budgets", (d.from_campaign_id, d.plan_id, d.from_budget, d.currency, at, eid)),
        ("campaign_budgets", (d.to_campaign_id, d.plan_id, d.to_budget, d.currency, at, eid)),
    ]


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


_ROWS: dict[str, Callable[[StoredEvent, Any], list[Row]]] = {
    "spend.recorded": _spend,
    "ad.metrics_reported": _ad_metrics,
    "lead.stage_changed": _lead,
    "sale.completed": _sale,
    "task.status_changed": _task,
    "plan.created": _plan,
    "plan.approved": _plan_approved,
    "campaign.planned": _campaign,
    "campaign.updated": _campaign,
    "campaign.status_changed": _status,
    "budget.allocated": _budget,
    "budget.reallocated": _reallocated,
    "kpi_target.set": _target,
}
"""Event types analytics stores; every other type is ignored by ``insert_events``."""


def rows_by_table(events: Iterable[StoredEvent]) -> dict[str, list[tuple[Any, ...]]]:
    """Group the rows the events produce by table (events analytics does not store are skipped)."""
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


# --------------------------------------------------------------------------------------------
# KPI queries
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scope:
    """Which campaigns (``None`` = the whole company) and whether to group by campaign."""

    campaign_ids: tuple[str, ...] | None
    per_campaign: bool = False

    def where(self, column: str = "campaign_id") -> str:
        return "1" if self.campaign_ids is None else f"{column} IN {{ids:Array(String)}}"

    def key(self, column: str = "campaign_id") -> str:
        return column if self.per_campaign else "''"


def _ms(value: dt.datetime | None, default: int) -> int:
    if value is None:
        return default
    if value.tzinfo is None:
        raise ValueError("period: datetimes must be timezone-aware")
    return int(value.timestamp() * 1000)


def _params(scope: _Scope, start: dt.datetime | None, end: dt.datetime | None) -> dict[str, Any]:
    return {
        "ids": list(scope.campaign_ids or ()),
        "start_ms": _ms(start, _EPOCH_MS_MIN),
        "end_ms": _ms(end, _EPOCH_MS_MAX),
    }


def _in_period(column: str = "occurred_at") -> str:
    return (
        f"{column} >= fromUnixTimestamp64Milli({{start_ms:Int64}}, 'UTC') "
        f"AND {column} < fromUnixTimestamp64Milli({{end_ms:Int64}}, 'UTC')"
    )


_MARGINS = "(SELECT campaign_id, gross_margin FROM campaigns FINAL)"
_GROSS = "toDecimal128(s.amount, 2) * if(m.campaign_id = '', toDecimal128(1, 6), m.gross_margin)"


def _rows(client: Client, sql: str, params: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {row[0]: tuple(row[1:]) for row in client.query(sql, parameters=params).result_rows}


def _spend_rows(client: Client, scope: _Scope, params: dict[str, Any]) -> dict[str, tuple]:
    sql = f"""SELECT {scope.key()} AS k, sum(amount) FROM spend FINAL
        WHERE {scope.where()} AND {_in_period()} GROUP BY k"""
    return _rows(client, sql, params)


def _ad_rows(client: Client, scope: _Scope, params: dict[str, Any]) -> dict[str, tuple]:
    sql = f"""SELECT {scope.key()} AS k, sum(impressions), sum(clicks) FROM ad_metrics FINAL
        WHERE {scope.where()} AND {_in_period()} GROUP BY k"""
    return _rows(client, sql, params)


def _lead_rows(client: Client, scope: _Scope, params: dict[str, Any]) -> dict[str, tuple]:
    reached = ", ".join(f"countIf(r >= {rank})" for rank in range(len(domain.FUNNEL_STAGES)))
    sql = f"""SELECT k, {reached}, countIf(was_lost) FROM (
            SELECT {scope.key()} AS k, lead_id, max(stage_rank) AS r,
                   max(stage_rank = {domain.LOST_RANK}) AS was_lost
            FROM lead_events WHERE {scope.where()} AND {_in_period()} GROUP BY k, lead_id
        ) GROUP BY k"""
    return _rows(client, sql, params)


def _sales_rows(client: Client, scope: _Scope, params: dict[str, Any]) -> dict[str, tuple]:
    sql = f"""SELECT k, sum(revenue), sum(gross), sum(discounts), sum(orders), count(),
               countIf(orders >= 2)
        FROM (
            SELECT {scope.key("s.campaign_id")} AS k, s.customer_id AS customer_id,
                   sum(s.amount) AS revenue, sum({_GROSS}) AS gross,
                   sum(s.discount_amount) AS discounts, count() AS orders
            FROM (SELECT * FROM sales FINAL WHERE {scope.where()} AND {_in_period()}) AS s
            LEFT ANY JOIN {_MARGINS} AS m ON m.campaign_id = s.campaign_id
            GROUP BY k, customer_id
        ) GROUP BY k"""
    return _rows(client, sql, params)


def _cohort_rows(client: Client, scope: _Scope, params: dict[str, Any]) -> dict[str, tuple]:
    # A customer belongs to the campaign of their first sale ever; duplicates cannot move a
    # min/argMin, but the lifetime gross profit is a sum, hence FINAL on the sales read.
    sql = f"""SELECT {scope.key("first_campaign")} AS k, count(),
               countIf({_in_period("first_at")}), sum(gross)
        FROM (
            SELECT s.customer_id AS customer_id,
                   argMin(s.campaign_id, (s.occurred_at, s.order_id, s.event_id)) AS first_campaign,
                   min(s.occurred_at) AS first_at, sum({_GROSS}) AS gross
            FROM (SELECT * FROM sales FINAL WHERE customer_id IN (
                    SELECT customer_id FROM sales WHERE {scope.where()})) AS s
            LEFT ANY JOIN {_MARGINS} AS m ON m.campaign_id = s.campaign_id
            GROUP BY customer_id
        ) WHERE {scope.where("first_campaign")} GROUP BY k"""
    return _rows(client, sql, params)


def _measures(
    client: Client, *, scope: _Scope, start: dt.datetime | None, end: dt.datetime | None
) -> dict[str, dict[str, Any]]:
    """Raw aggregates per group key ('' for the whole scope), as ``Measures`` field dicts."""
    params = _params(scope, start, end)
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    n = len(domain.FUNNEL_STAGES)
    for k, (spend,) in _spend_rows(client, scope, params).items():
        out[k]["spend"] = spend
    for k, (impressions, clicks) in _ad_rows(client, scope, params).items():
        out[k].update(impressions=int(impressions), clicks=int(clicks))
    for k, row in _lead_rows(client, scope, params).items():
        out[k].update(reached=tuple(int(x) for x in row[:n]), lost=int(row[n]))
    for k, (revenue, gross, discounts, orders, buyers, repeat) in _sales_rows(
        client, scope, params
    ).items():
        out[k].update(
            revenue=revenue,
            gross_profit=gross,
            discounts=discounts,
            orders=int(orders),
            buyers=int(buyers),
            repeat_buyers=int(repeat),
        )
    for k, (customers, new, gross) in _cohort_rows(client, scope, params).items():
        out[k].update(ltv_customers=int(customers), new_customers=int(new), ltv_gross_profit=gross)
    return out


def _campaign_dims(client: Client, *, where: str, params: dict[str, Any]) -> list[dict]:
    sql = f"""SELECT campaign_id, plan_id, name, channel, brand, owner, budget, currency,
               start_date, end_date, gross_margin, status, version
        FROM campaigns_current WHERE {where} ORDER BY campaign_id"""
    return list(client.query(sql, parameters=params).named_results())


def _kpis(
    fields: Mapping[str, Any],
    *,
    dims: Mapping[str, Any] | None,
    start: dt.datetime | None,
    end: dt.datetime | None,
    now: dt.datetime,
) -> dict[str, Any]:
    extra = {}
    if dims:
        extra = {
            "budget": dims["budget"],
            "start_date": dims["start_date"],
            "end_date": dims["end_date"],
        }
    measures = domain.Measures(**{**fields, **extra})
    as_of = now if end is None else min(now, end)
    return domain.compute_kpis(measures, as_of=as_of)


def campaign_kpis(
    client: Client,
    *,
    campaign_id: str,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Every SPEC §4 KPI of one campaign over [start, end), with its CKPI and identity."""
    now = now or dt.datetime.now(dt.UTC)
    scope = _Scope((campaign_id,))
    fields = _measures(client, scope=scope, start=start, end=end).get("", {})
    dims = next(
        iter(
            _campaign_dims(client, where="campaign_id = {cid:String}", params={"cid": campaign_id})
        ),
        None,
    )
    kpis = _kpis(fields, dims=dims, start=start, end=end, now=now)
    targets = kpi_targets(client, campaign_id=campaign_id)
    return {
        "campaign_id": campaign_id,
        "plan_id": dims["plan_id"] if dims else None,
        "name": dims["name"] if dims else None,
        "status": dims["status"] if dims else None,
        "currency": dims["currency"] if dims else None,
        "start": start,
        "end": end,
        **kpis,
        "ckpi": domain.ckpi(kpis=kpis, targets=targets),
    }


def plan_kpis(
    client: Client,
    *,
    plan_id: str,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """KPIs of a plan (its campaigns as one scope) and a per-campaign breakdown."""
    now = now or dt.datetime.now(dt.UTC)
    dims = _campaign_dims(client, where="plan_id = {pid:String}", params={"pid": plan_id})
    ids = tuple(d["campaign_id"] for d in dims)
    total, each = {}, {}
    if ids:
        total = _measures(client, scope=_Scope(ids), start=start, end=end).get("", {})
        each = _measures(client, scope=_Scope(ids, per_campaign=True), start=start, end=end)
    plan = _plan_dims(client, plan_id=plan_id)
    budget = sum((d["budget"] for d in dims), Decimal(0)) if dims else None
    plan_dims = {
        "budget": budget,
        "start_date": plan["period_start"] if plan else None,
        "end_date": plan["period_end"] if plan else None,
    }
    targets = _targets(client, campaign_ids=ids)
    breakdown = []
    for d in dims:
        kpis = _kpis(each.get(d["campaign_id"], {}), dims=d, start=start, end=end, now=now)
        own = [t for t in targets if t.campaign_id == d["campaign_id"]]
        identity = {k: d[k] for k in ("campaign_id", "name", "channel", "brand", "status")}
        breakdown.append({**identity, **kpis, "ckpi": domain.ckpi(kpis=kpis, targets=own)})
    kpis = _kpis(total, dims=plan_dims, start=start, end=end, now=now)
    by_campaign = {row["campaign_id"]: row for row in breakdown}
    return {
        "plan_id": plan_id,
        "name": plan["name"] if plan else None,
        "status": plan["status"] if plan else None,
        "currency": plan["currency"] if plan else (dims[0]["currency"] if dims else None),
        "start": start,
        "end": end,
        **kpis,
        "ckpi": domain.plan_ckpi(campaign_kpis=by_campaign, targets=targets),
        "campaigns": breakdown,
    }


def _plan_dims(client: Client, *, plan_id: str) -> dict[str, Any] | None:
    sql = """SELECT plan_id, name, period_start, period_end, currency, owner, status
        FROM plans_current WHERE plan_id = {pid:String}"""
    return next(iter(client.query(sql, parameters={"pid": plan_id}).named_results()), None)


def funnel(
    client: Client,
    *,
    campaign_id: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> dict[str, Any]:
    """Distinct leads reaching each stage or later, lost leads and conversions (None = company)."""
    scope = _Scope(None if campaign_id is None else (campaign_id,))
    row = _lead_rows(client, scope, _params(scope, start, end)).get("")
    n = len(domain.FUNNEL_STAGES)
    reached = tuple(int(x) for x in row[:n]) if row else (0,) * n
    return {
        "campaign_id": campaign_id,
        "start": start,
        "end": end,
        "stages": dict(zip(domain.FUNNEL_STAGES, reached, strict=True)),
        "lost": int(row[n]) if row else 0,
        "conversions": domain.funnel_conversions(reached),
    }


# --------------------------------------------------------------------------------------------
# targets and alert state
# --------------------------------------------------------------------------------------------


def _targets(client: Client, *, campaign_ids: Sequence[str]) -> list[domain.Target]:
    sql = """SELECT target_id, campaign_id, kpi, target, direction, weight, tolerance
        FROM kpi_targets FINAL WHERE campaign_id IN {ids:Array(String)} ORDER BY target_id"""
    rows = client.query(sql, parameters={"ids": list(campaign_ids)}).result_rows
    return [
        domain.Target(
            target_id=tid,
            campaign_id=cid,
            kpi=kpi,
            target=target.normalize(),
            direction=direction,
            weight=weight.normalize(),
            tolerance=tolerance.normalize(),
        )
        for tid, cid, kpi, target, direction, weight, tolerance in rows
    ]


def kpi_targets(client: Client, *, campaign_id: str) -> list[domain.Target]:
    """The latest KPI targets of a campaign, ordered by target_id."""
    return _targets(client, campaign_ids=[campaign_id])


def alert_states(client: Client, *, campaign_id: str) -> dict[str, bool]:
    """target_id → breached, as last saved for the campaign's targets."""
    sql = """SELECT target_id, breached FROM alert_state FINAL
        WHERE campaign_id = {cid:String}"""
    rows = client.query(sql, parameters={"cid": campaign_id}).result_rows
    return {tid: bool(breached) for tid, breached in rows}


def save_alert_states(
    client: Client, *, campaign_id: str, states: Mapping[str, bool], now: dt.datetime
) -> None:
    """Record breach states (pass only those that changed); the latest ``now`` wins."""
    if not states:
        return
    version = int(now.timestamp() * 1_000_000)
    rows = [[campaign_id, tid, int(b), now, version] for tid, b in sorted(states.items())]
    client.insert(
        "alert_state",
        rows,
        column_names=["campaign_id", "target_id", "breached", "changed_at", "version"],
    )


def campaign_currencies(client: Client, *, campaign_ids: Sequence[str]) -> dict[str, str]:
    """campaign_id → currency of the campaigns known among ``campaign_ids``."""
    if not campaign_ids:
        return {}
    sql = """SELECT campaign_id, currency FROM campaigns_current
        WHERE campaign_id IN {ids:Array(String)}"""
    rows = client.query(sql, parameters={"ids": list(campaign_ids)}).result_rows
    return {cid: currency for cid, currency in rows}


class Warehouse:
    """Serialises access to one ClickHouse client from async code (one query at a time).

    chDB runs in-process on one engine, and a clickhouse-connect session allows no concurrent
    queries, so calls run one by one on a worker thread.
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        self._lock = threading.Lock()

    async def run(self, function: Callable[..., Any], /, **kwargs: Any) -> Any:
        """Run ``function(client, **kwargs)`` on a worker thread and return its result."""
        return await asyncio.to_thread(self._locked, function, kwargs)

    def _locked(self, function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        with self._lock:
            return function(self.client, **kwargs)


# --------------------------------------------------------------------------------------------
# plan reports (spend over time)
# --------------------------------------------------------------------------------------------


def plan_daily_spend(
    client: Client,
    *,
    plan_id: str,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Spend per UTC day and campaign of a plan over [start, end), ordered by day and campaign."""
    sql = f"""SELECT toDate(occurred_at, 'UTC') AS day, campaign_id, sum(amount) AS spend
        FROM spend FINAL
        WHERE campaign_id IN (
                SELECT campaign_id FROM campaigns FINAL WHERE plan_id = {{pid:String}})
            AND {_in_period()}
        GROUP BY day, campaign_id ORDER BY day, campaign_id"""
    params = {**_params(_Scope(None), start, end), "pid": plan_id}
    return list(client.query(sql, parameters=params).named_results())
