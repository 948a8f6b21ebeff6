"""Discount limits in ClickHouse: the planning state they need (campaigns' budget lines, the
line tree, the limits set on plans, lines and campaigns) and the discounted sales.

``budget_lines`` and ``discount_limits`` hold the full state of each line and limit by
``version`` (ReplacingMergeTree), as ``campaigns`` does; a campaign's ``line_id`` is a column
of ``campaigns`` ('' = straight from the plan). Read with FINAL, like the sales.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from clickhouse_connect.driver.client import Client

from services.measurement.discounts import Limit, Sale, Scope

MIGRATION: tuple[str, ...] = (
    "ALTER TABLE {db}.campaigns ADD COLUMN IF NOT EXISTS line_id String DEFAULT ''",
    """CREATE TABLE IF NOT EXISTS {db}.budget_lines (
        line_id String, plan_id String, parent_id String, version UInt64,
        updated_at DateTime64(3, 'UTC'), event_id UUID
    ) ENGINE = ReplacingMergeTree(version) ORDER BY line_id""",
    """CREATE TABLE IF NOT EXISTS {db}.discount_limits (
        scope_kind LowCardinality(String), scope_id String, plan_id String,
        promo_fund Nullable(Decimal(18, 2)), max_discount_rate Nullable(Decimal(18, 6)),
        currency LowCardinality(String), version UInt64,
        updated_at DateTime64(3, 'UTC'), event_id UUID
    ) ENGINE = ReplacingMergeTree(version) ORDER BY (scope_kind, scope_id)""",
)
"""DDL of the discount tables (migration 7 of ``schema.MIGRATIONS``)."""


@dataclass(frozen=True)
class PlanLimits:
    """What a plan's discount checks need: its campaigns' lines, the line tree, the limits."""

    plan_id: str
    currency: str
    line_of: dict[str, str | None] = field(default_factory=dict)
    """campaign_id → its budget line (None: straight from the plan)."""
    parents: dict[str, str | None] = field(default_factory=dict)
    limits: dict[Scope, Limit] = field(default_factory=dict)
    currencies: dict[Scope, str] = field(default_factory=dict)


def plan_limits(client: Client, *, plan_id: str) -> PlanLimits:
    """A plan's campaigns with their lines, its line tree and every limit set in it."""
    params = {"plan": plan_id}
    plan = client.query(
        "SELECT currency FROM plans FINAL WHERE plan_id = {plan:String}", parameters=params
    ).result_rows
    campaigns = client.query(
        "SELECT campaign_id, line_id FROM campaigns FINAL WHERE plan_id = {plan:String}",
        parameters=params,
    ).result_rows
    lines = client.query(
        "SELECT line_id, parent_id FROM budget_lines FINAL WHERE plan_id = {plan:String}",
        parameters=params,
    ).result_rows
    limits = client.query(
        """SELECT scope_kind, scope_id, promo_fund, max_discount_rate, currency
        FROM discount_limits FINAL WHERE plan_id = {plan:String}""",
        parameters=params,
    ).result_rows
    return PlanLimits(
        plan_id=plan_id,
        currency=plan[0][0] if plan else (limits[0][4] if limits else ""),
        line_of={campaign_id: line_id or None for campaign_id, line_id in campaigns},
        parents={line_id: parent_id or None for line_id, parent_id in lines},
        limits={
            (kind, sid): Limit(promo_fund=fund, max_discount_rate=rate)
            for kind, sid, fund, rate, _ in limits
        },
        currencies={(kind, sid): currency for kind, sid, _, _, currency in limits},
    )


def plan_of(
    client: Client, *, campaign_id: str | None = None, line_id: str | None = None
) -> str | None:
    """The plan of a campaign or of a budget line, None if unknown."""
    if campaign_id is not None:
        sql = "SELECT plan_id FROM campaigns FINAL WHERE campaign_id = {id:String}"
        ident = campaign_id
    else:
        sql = "SELECT plan_id FROM budget_lines FINAL WHERE line_id = {id:String}"
        ident = line_id or ""
    rows = client.query(sql, parameters={"id": ident}).result_rows
    return rows[0][0] if rows and rows[0][0] else None


def discounts_used(client: Client, *, campaign_ids: Sequence[str]) -> dict[str, Decimal]:
    """The discount given on every sale so far, by campaign (each event once)."""
    if not campaign_ids:
        return {}
    sql = """SELECT campaign_id, sum(discount_amount) FROM sales FINAL
        WHERE campaign_id IN {ids:Array(String)} GROUP BY campaign_id"""
    rows = client.query(sql, parameters={"ids": list(campaign_ids)}).result_rows
    return {campaign_id: Decimal(used) for campaign_id, used in rows}


def discounted_sales(
    client: Client,
    *,
    campaign_ids: Sequence[str],
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> list[Sale]:
    """The sales with a discount of these campaigns in [start, end), oldest first."""
    if not campaign_ids:
        return []
    sql = """SELECT toString(event_id), order_id, campaign_id, amount, discount_amount,
            currency, discount_reason, partner_id
        FROM sales FINAL
        WHERE campaign_id IN {ids:Array(String)} AND discount_amount > 0
            AND occurred_at >= {start:DateTime64(3, 'UTC')}
            AND occurred_at < {end:DateTime64(3, 'UTC')}
        ORDER BY occurred_at, order_id, event_id"""
    params = {
        "ids": list(campaign_ids),
        "start": start or dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
        "end": end or dt.datetime(2299, 12, 31, tzinfo=dt.UTC),
    }
    return [
        Sale(
            event_id=event_id,
            order_id=order_id,
            campaign_id=campaign_id,
            amount=Decimal(amount),
            discount_amount=Decimal(discount),
            currency=currency,
            reason=reason,
            partner_id=partner,
        )
        for event_id, order_id, campaign_id, amount, discount, currency, reason, partner in (
            client.query(sql, parameters=params).result_rows
        )
    ]
