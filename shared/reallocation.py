"""Reallocation rules, the part planning and measurement share: the vocabulary of a rule
(KPIs, comparisons, actions, modes) and the default rule's figures. Today's
``MRM_MEASUREMENT_REALLOCATION_*`` settings default to these in measurement and give every new
plan its default rule in planning, so the two services agree without talking to each other."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from shared.kpis import KPI_NAMES

Comparison = Literal["lt", "le", "gt", "ge"]
ActionKind = Literal["best_in_line", "campaign", "line"]
"""Where the money goes: the best-scoring campaign of the donor's line, or a named campaign
or budget line."""
RuleMode = Literal["propose", "apply"]

RULE_KPIS: tuple[str, ...] = ("ckpi", *KPI_NAMES)
"""What a rule's condition may watch: a campaign's CKPI (the weighted score of its targets,
100 = on target) or any KPI of the catalogue."""

DEFAULT_ENABLED = True
DEFAULT_UNDER_CKPI = Decimal(80)
DEFAULT_OVER_CKPI = Decimal(110)
DEFAULT_HYSTERESIS = Decimal(5)
DEFAULT_SHARE = Decimal("0.2")
DEFAULT_MIN_AMOUNT = Decimal(1)
DEFAULT_MIN_SPEND_SHARE = Decimal("0.1")


def holds(*, value: Decimal, comparison: Comparison, threshold: Decimal) -> bool:
    """Whether ``value`` compares to ``threshold`` as the rule's condition asks."""
    if comparison == "lt":
        return value < threshold
    if comparison == "le":
        return value <= threshold
    if comparison == "gt":
        return value > threshold
    return value >= threshold
