"""Reallocation rules in ClickHouse: the plans' rules as planning publishes them, and what the
monitor reads to evaluate them (a plan's rules, its campaigns' budget lines, the plans with a
condition waiting out its ``hold_s``).

``reallocation_rules`` keeps each rule's full state by ``version`` (ReplacingMergeTree, read
with FINAL). A removed rule is a row with ``removed = 1`` and the highest version, so it wins
over every state before it, and a plan that had rules is told from a plan that never had any
(which the settings' rule watches).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client

from services.measurement.reallocation import PlanRule
from shared.reallocation import RuleSpec

REMOVED_VERSION = 2**63 - 1
"""The version of a removal row: above any version planning gives a rule."""

MIGRATION: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS {db}.reallocation_rules (
        rule_id String, plan_id String, kpi LowCardinality(String),
        comparison LowCardinality(String), threshold Decimal(28, 10),
        min_spend_share Decimal(18, 6), hold_s UInt32, hysteresis Decimal(28, 10),
        action LowCardinality(String), target_id String,
        recipient_threshold Nullable(Decimal(28, 10)), share Decimal(18, 6),
        min_amount Decimal(18, 2), mode LowCardinality(String), enabled UInt8,
        scope_line_id String, is_default UInt8, removed UInt8, version UInt64,
        updated_at DateTime64(3, 'UTC'), event_id UUID
    ) ENGINE = ReplacingMergeTree(version) ORDER BY rule_id""",
)
"""DDL of the rules table (migration 9 of ``schema.MIGRATIONS``)."""

COLUMNS = (
    "rule_id plan_id kpi comparison threshold min_spend_share hold_s hysteresis action target_id "
    "recipient_threshold share min_amount mode enabled scope_line_id is_default removed version "
    "updated_at "
    "event_id"
)
"""Insert column order of ``reallocation_rules`` (``writes.COLUMNS``)."""


@dataclass(frozen=True)
class PlanRules:
    """What the monitor needs of a plan to evaluate its rules."""

    rules: list[PlanRule]
    known: bool
    """Whether planning ever published a rule of the plan (else the settings' rule applies)."""
    line_of: dict[str, str | None]
    """campaign_id → its budget line (None: straight from the plan)."""
    parents: dict[str, str | None]
    """line_id → its parent line (None: under the plan)."""
    line_names: dict[str, str]
    """line_id → its name, where known."""


def plan_rules(client: Client, *, plan_id: str) -> PlanRules:
    """A plan's current rules (removed ones left out) and its campaigns' budget lines."""
    params = {"plan": plan_id}
    rows = client.query(
        """SELECT rule_id, kpi, comparison, threshold, min_spend_share, hold_s, hysteresis,
            action, target_id, recipient_threshold, share, min_amount, mode, enabled,
            scope_line_id, removed
        FROM reallocation_rules FINAL WHERE plan_id = {plan:String} ORDER BY rule_id""",
        parameters=params,
    ).result_rows
    lines = client.query(
        "SELECT campaign_id, line_id FROM campaigns FINAL WHERE plan_id = {plan:String}",
        parameters=params,
    ).result_rows
    tree = client.query(
        "SELECT line_id, parent_id, name FROM budget_lines FINAL WHERE plan_id = {plan:String}",
        parameters=params,
    ).result_rows
    return PlanRules(
        rules=[_rule(row) for row in rows if not row[-1]],
        known=bool(rows),
        line_of={campaign_id: line_id or None for campaign_id, line_id in lines},
        parents={line_id: parent_id or None for line_id, parent_id, _ in tree},
        line_names={line_id: name for line_id, _, name in tree if name},
    )


def _rule(row: Sequence[Any]) -> PlanRule:
    (rule_id, kpi, comparison, threshold, min_spend_share, hold_s, hysteresis, action) = row[:8]
    target_id, recipient_threshold, share, min_amount, mode, enabled, scope = row[8:15]
    return PlanRule(
        rule_id=rule_id,
        spec=RuleSpec(
            kpi=kpi,
            comparison=comparison,
            threshold=Decimal(threshold),
            action=action,
            share=Decimal(share),
            min_spend_share=Decimal(min_spend_share),
            hold_s=int(hold_s),
            hysteresis=Decimal(hysteresis),
            target_id=target_id or None,
            recipient_threshold=(
                None if recipient_threshold is None else Decimal(recipient_threshold)
            ),
            min_amount=Decimal(min_amount),
            mode=mode,
            enabled=bool(enabled),
            scope_line_id=scope or None,
        ),
    )


def plans_holding(client: Client, *, prefix: str) -> list[str]:
    """Plans (their ``alert_state`` subjects ``plan:<id>``) with a state key starting with
    ``prefix`` that is on: a rule's condition waiting out its ``hold_s``."""
    sql = """SELECT DISTINCT campaign_id FROM alert_state FINAL
        WHERE startsWith(campaign_id, 'plan:') AND startsWith(target_id, {prefix:String})
            AND breached = 1 ORDER BY campaign_id"""
    rows = client.query(sql, parameters={"prefix": prefix}).result_rows
    return [row[0].removeprefix("plan:") for row in rows]
