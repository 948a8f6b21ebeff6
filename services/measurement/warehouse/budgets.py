"""A plan's budget in ClickHouse, for the plan report's budget tree: the plan's period and cap,
its budget lines in full, the campaigns drawing from them and their spend by month.

``budget_lines`` holds each line's latest ``budget_line.set`` by ``version`` (migration 7 kept
only the tree; migration 8 adds what the report shows: name, attributes, amount, currency and the
month phasing — an empty ``months`` map means evenly over the plan period, as planning's ``None``
does, since a phasing given by hand always names a month). Lines set before migration 8 read
with an empty name and a zero amount until planning republishes them. ``budget_line.removed`` is
kept apart in ``budget_line_removals`` (it carries no version to outrank the line's, and line
ids are never reused), and removed lines are left out. ``plans.budget`` is the plan's cap, from
``plan.created`` and ``plan.updated`` (NULL: no cap).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client

from services.measurement.warehouse._dims import campaign_dims
from shared.budget import Draw, LineFacts, Period

MIGRATION: tuple[str, ...] = (
    *(
        f"ALTER TABLE {{db}}.budget_lines ADD COLUMN IF NOT EXISTS {column}"
        for column in (
            "name String DEFAULT ''",
            "brand String DEFAULT ''",
            "channel LowCardinality(String) DEFAULT ''",
            "region String DEFAULT ''",
            "partner String DEFAULT ''",
            "amount Decimal(18, 2) DEFAULT 0",
            "currency LowCardinality(String) DEFAULT ''",
            "months Map(String, Decimal(18, 2))",
        )
    ),
    "ALTER TABLE {db}.plans ADD COLUMN IF NOT EXISTS budget Nullable(Decimal(18, 2)) DEFAULT NULL",
    """CREATE TABLE IF NOT EXISTS {db}.budget_line_removals (
        line_id String, plan_id String, removed_at DateTime64(3, 'UTC'), event_id UUID
    ) ENGINE = ReplacingMergeTree(removed_at) ORDER BY line_id""",
)
"""DDL of the budget lines in full, their removals and the plans' caps (migration 8)."""


@dataclass(frozen=True)
class PlanBudget:
    """What the report's budget tree is built from: the plan's period and cap, its live lines,
    its campaigns' draws and their spend by campaign and month (``YYYY-MM``)."""

    plan_id: str
    currency: str
    period: Period
    lines: list[LineFacts]
    draws: list[Draw]
    actual: dict[str, dict[str, Decimal]]


def plan_budget(client: Client, *, plan_id: str) -> PlanBudget | None:
    """The plan's budget as the warehouse knows it; None while the plan itself is unknown."""
    params = {"plan": plan_id}
    plan = client.query(
        """SELECT period_start, period_end, currency, budget FROM plans FINAL
        WHERE plan_id = {plan:String}""",
        parameters=params,
    ).result_rows
    if not plan:
        return None
    start, end, currency, cap = plan[0]
    lines = client.query(
        """SELECT line_id, parent_id, name, brand, channel, region, partner, amount, months,
            version
        FROM budget_lines FINAL
        WHERE plan_id = {plan:String} AND line_id NOT IN (
            SELECT line_id FROM budget_line_removals WHERE plan_id = {plan:String})
        ORDER BY line_id""",
        parameters=params,
    ).result_rows
    campaigns = client.query(
        "SELECT campaign_id, line_id FROM campaigns FINAL WHERE plan_id = {plan:String}",
        parameters=params,
    ).result_rows
    line_of: dict[str, str] = {campaign_id: line_id for campaign_id, line_id in campaigns}
    spend = client.query(
        """SELECT campaign_id, toYYYYMM(occurred_at, 'UTC') AS month, sum(amount) FROM spend FINAL
        WHERE campaign_id IN (SELECT campaign_id FROM campaigns FINAL WHERE plan_id = {plan:String})
        GROUP BY campaign_id, month""",
        parameters=params,
    ).result_rows
    actual: dict[str, dict[str, Decimal]] = {}
    for campaign_id, month, amount in spend:
        actual.setdefault(campaign_id, {})[f"{month // 100:04d}-{month % 100:02d}"] = amount
    dims = campaign_dims(client, where="plan_id = {pid:String}", params={"pid": plan_id})
    return PlanBudget(
        plan_id=plan_id,
        currency=currency,
        period=Period(start=start, end=end, cap=cap),
        lines=[_line(plan_id, row) for row in lines],
        draws=[
            Draw(
                campaign_id=d["campaign_id"],
                line_id=line_of.get(d["campaign_id"]) or None,
                budget=d["budget"],
                start_date=d["start_date"],
                end_date=d["end_date"],
                status=d["status"],
            )
            for d in dims
        ],
        actual=actual,
    )


def _line(plan_id: str, row: Sequence[Any]) -> LineFacts:
    line_id, parent_id, name, brand, channel, region, partner, amount, months, version = row
    return LineFacts(
        line_id=line_id,
        plan_id=plan_id,
        name=name,
        amount=amount,
        parent_id=parent_id or None,
        brand=brand or None,
        channel=channel or None,
        region=region or None,
        partner=partner or None,
        months=dict(months) or None,
        version=version,
    )
