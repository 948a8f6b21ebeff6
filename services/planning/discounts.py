"""Discount and promo-fund limits of a plan, a budget line or a campaign: pure rules, no I/O.

A limit holds a promo fund (the total discount its sales may be given, None = no fund) and a
maximum discount rate per sale (None = none). Setting one publishes ``discount_limit.set``
with its full state and a new version; which limit applies to a sale, and how much of a fund
is used, is measurement's to work out from these events.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

from services.planning.domain import BUDGET_ROLES
from shared.errors import Forbidden
from shared.events.planning import DiscountLimitSet

ScopeKind = Literal["plan", "line", "campaign"]
_CENT = Decimal("0.01")
_RATE_PLACES = Decimal("0.000001")


@dataclass(frozen=True)
class LimitFacts:
    """The discount limits of one scope (a plan, budget line or campaign) of a plan."""

    scope_kind: ScopeKind
    scope_id: str
    plan_id: str
    currency: str
    promo_fund: Decimal | None = None
    max_discount_rate: Decimal | None = None
    version: int = 0
    """0 until limits are first set."""


def check_role(*, plan_status: str, role: str) -> None:
    """Once a plan is approved only a CMO or admin changes its discount limits."""
    if plan_status == "approved" and role not in BUDGET_ROLES:
        raise Forbidden("only cmo or admin change the discount limits of an approved plan")


def set_limit(
    before: LimitFacts, *, promo_fund: Decimal | None, max_discount_rate: Decimal | None
) -> tuple[LimitFacts, list[DiscountLimitSet]]:
    """Replace a scope's limits (a new version); nothing happens when they are unchanged.
    The fund is kept to the cent and the rate to six decimals, as stored and published."""
    promo_fund = None if promo_fund is None else promo_fund.quantize(_CENT)
    if max_discount_rate is not None:
        max_discount_rate = max_discount_rate.quantize(_RATE_PLACES)
    if (before.promo_fund, before.max_discount_rate) == (promo_fund, max_discount_rate):
        return before, []
    after = replace(
        before,
        promo_fund=promo_fund,
        max_discount_rate=max_discount_rate,
        version=before.version + 1,
    )
    return after, [limit_event(after)]


def limit_event(facts: LimitFacts) -> DiscountLimitSet:
    """The ``discount_limit.set`` event of a scope's current limits."""
    return DiscountLimitSet(
        scope_kind=facts.scope_kind,
        scope_id=facts.scope_id,
        plan_id=facts.plan_id,
        promo_fund=facts.promo_fund,
        max_discount_rate=facts.max_discount_rate,
        currency=facts.currency,
        version=facts.version,
    )
