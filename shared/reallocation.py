"""Reallocation rules, the part planning and measurement share: the vocabulary of a rule
(KPIs, comparisons, actions, modes), the default rule's figures and what a condition means.
Today's ``MRM_MEASUREMENT_REALLOCATION_*`` settings default to these in measurement (the rule
of a plan measurement knows no rule of) and give every new plan its default rule in planning,
so the two services agree without talking to each other."""

from __future__ import annotations

from dataclasses import dataclass
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


def low_is_bad(comparison: Comparison) -> bool:
    """Whether the condition watches for a value too low (``lt``/``le``): then higher values
    score better, and a recipient must score at least its threshold."""
    return comparison in ("lt", "le")


def cleared(
    *, value: Decimal, comparison: Comparison, threshold: Decimal, hysteresis: Decimal
) -> bool:
    """Whether an episode of the condition is over: the value no longer meets it and is at
    least ``hysteresis`` past the threshold, on the good side."""
    if holds(value=value, comparison=comparison, threshold=threshold):
        return False
    if low_is_bad(comparison):
        return value >= threshold + hysteresis
    return value <= threshold - hysteresis


@dataclass(frozen=True)
class RuleSpec:
    """What a reallocation rule says: its scope (the campaigns of ``scope_line_id`` and the
    lines beneath it, or all), its condition (``kpi`` compared to ``threshold`` for
    ``hold_s`` seconds, once a campaign has spent ``min_spend_share`` of its budget; over when
    the KPI is ``hysteresis`` past the threshold), its action (``share`` of the donor's unspent
    budget, if at least ``min_amount``, to the best campaign of its line scoring at least
    ``recipient_threshold``, or to the campaign or line ``target_id``) and its mode."""

    kpi: str
    comparison: Comparison
    threshold: Decimal
    action: ActionKind
    share: Decimal
    min_spend_share: Decimal = Decimal(0)
    hold_s: int = 0
    hysteresis: Decimal = Decimal(0)
    target_id: str | None = None
    recipient_threshold: Decimal | None = None
    min_amount: Decimal = Decimal(0)
    mode: RuleMode = "propose"
    enabled: bool = True
    scope_line_id: str | None = None
    """Only campaigns drawing from this budget line or a line beneath it (None: all)."""


def default_rule(
    *,
    under_ckpi: Decimal = DEFAULT_UNDER_CKPI,
    over_ckpi: Decimal = DEFAULT_OVER_CKPI,
    hysteresis: Decimal = DEFAULT_HYSTERESIS,
    share: Decimal = DEFAULT_SHARE,
    min_amount: Decimal = DEFAULT_MIN_AMOUNT,
    min_spend_share: Decimal = DEFAULT_MIN_SPEND_SHARE,
    enabled: bool = DEFAULT_ENABLED,
) -> RuleSpec:
    """The default rule: a live campaign whose CKPI is below ``under_ckpi`` once it has spent
    ``min_spend_share`` gives ``share`` of its unspent budget to the best campaign of its line
    with a CKPI of at least ``over_ckpi``, by proposal, once per episode (over when its CKPI
    reaches ``under_ckpi + hysteresis``)."""
    return RuleSpec(
        kpi="ckpi",
        comparison="lt",
        threshold=under_ckpi,
        action="best_in_line",
        share=share,
        min_spend_share=min_spend_share,
        hysteresis=hysteresis,
        recipient_threshold=over_ckpi,
        min_amount=min_amount,
        mode="propose",
        enabled=enabled,
    )
