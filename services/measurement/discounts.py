"""Discount limits of sales, pure rules (no I/O): a sale's discount rate, which limit applies
to a campaign's sale, how much of each promo fund is used, which thresholds a use reaches,
the discount a sale was given beyond its maximum rate, and the discount analytics.

A sale's **discount rate** is ``discount_amount / (amount + discount_amount)``: the share of
the undiscounted price given away (0 when both are 0). ``list_price`` is not used, so every
sale has a rate, whatever its producer sends. The limit of a campaign's sale is the campaign's
own maximum rate, else its budget line's, else the nearest ancestor line's, else its plan's;
a promo fund counts the discounts of every sale of the campaigns under its scope.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

ZERO = Decimal("0.00")
THRESHOLDS: tuple[int, ...] = (80, 100)
"""Shares of a promo fund (in %) whose crossing is announced."""

Scope = tuple[str, str]
"""(kind, id): ("campaign", id), ("line", id) or ("plan", id)."""


@dataclass(frozen=True)
class Limit:
    """The limits set on one scope (None: not set there)."""

    promo_fund: Decimal | None = None
    max_discount_rate: Decimal | None = None


@dataclass(frozen=True)
class Sale:
    """A discounted sale of a campaign."""

    event_id: str
    order_id: str
    campaign_id: str
    amount: Decimal
    discount_amount: Decimal
    currency: str
    reason: str = ""
    partner_id: str = ""


@dataclass(frozen=True)
class Exceeded:
    """A sale given more than its maximum rate: the limit's scope and the discount beyond."""

    sale: Sale
    scope: Scope
    rate: Decimal
    max_discount_rate: Decimal
    amount_over: Decimal


def discount_rate(*, amount: Decimal, discount_amount: Decimal) -> Decimal:
    """``discount_amount / (amount + discount_amount)``; 0 for a sale of nothing."""
    undiscounted = amount + discount_amount
    return discount_amount / undiscounted if undiscounted else Decimal(0)


def scope_chain(
    *, campaign_id: str, plan_id: str, line_id: str | None, parents: Mapping[str, str | None]
) -> list[Scope]:
    """The scopes whose limits may apply to a campaign's sales, nearest first: the campaign,
    its line and that line's ancestors, the plan (a cycle in a stale projection stops)."""
    chain: list[Scope] = [("campaign", campaign_id)]
    seen: set[str] = set()
    while line_id and line_id not in seen:
        seen.add(line_id)
        chain.append(("line", line_id))
        line_id = parents.get(line_id)
    chain.append(("plan", plan_id))
    return chain


def applicable_rate(
    chain: Sequence[Scope], limits: Mapping[Scope, Limit]
) -> tuple[Scope, Decimal] | None:
    """The nearest scope of ``chain`` with a maximum rate, and that rate (None: no limit)."""
    for scope in chain:
        limit = limits.get(scope)
        if limit is not None and limit.max_discount_rate is not None:
            return scope, limit.max_discount_rate
    return None


def amount_over(*, sale: Sale, max_discount_rate: Decimal) -> Decimal:
    """The discount given beyond ``max_discount_rate``, to the cent (0 within it)."""
    allowed = max_discount_rate * (sale.amount + sale.discount_amount)
    return max(ZERO, (sale.discount_amount - allowed).quantize(ZERO, rounding=ROUND_HALF_UP))


def exceeded(sale: Sale, *, limit: tuple[Scope, Decimal] | None) -> Exceeded | None:
    """The sale's excess over its applicable maximum rate, or None when within it."""
    if limit is None:
        return None
    scope, max_rate = limit
    rate = discount_rate(amount=sale.amount, discount_amount=sale.discount_amount)
    if rate <= max_rate:
        return None
    return Exceeded(
        sale=sale,
        scope=scope,
        rate=rate.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP),
        max_discount_rate=max_rate,
        amount_over=amount_over(sale=sale, max_discount_rate=max_rate),
    )


def fund_use(
    *, used_by_campaign: Mapping[str, Decimal], chains: Mapping[str, Sequence[Scope]]
) -> dict[Scope, Decimal]:
    """Discount given under each scope: a campaign's own, a line's and a plan's summed over
    the campaigns beneath them."""
    use: dict[Scope, Decimal] = {}
    for campaign_id, chain in chains.items():
        used = used_by_campaign.get(campaign_id, ZERO)
        for scope in chain:
            use[scope] = use.get(scope, ZERO) + used
    return use


def thresholds_reached(*, used: Decimal, promo_fund: Decimal) -> set[int]:
    """The thresholds (% of the fund) ``used`` is at or above; none while nothing is used."""
    if used <= 0:
        return set()
    return {t for t in THRESHOLDS if used * 100 >= promo_fund * t}


def threshold_changes(*, reached: Iterable[int], announced: Iterable[int]) -> dict[int, bool]:
    """The thresholds whose state changes: newly reached (True, announced once) and those
    fallen below again (False: re-armed without an announcement)."""
    reached, announced = set(reached), set(announced)
    return {t: t in reached for t in sorted(reached ^ announced)}


@dataclass(frozen=True)
class Analytics:
    """Discount given in a period: totals by reason, partner and campaign; what was given
    beyond the maximum rates, and its share of all discount (None when none was given)."""

    total: Decimal
    over_limit: Decimal
    over_limit_share: Decimal | None
    by_reason: dict[str, Decimal]
    by_partner: dict[str, Decimal]
    by_campaign: dict[str, Decimal]


def analytics(
    sales: Iterable[Sale], *, limit_of: Mapping[str, tuple[Scope, Decimal] | None]
) -> Analytics:
    """Sum the sales' discounts by reason, partner and campaign ('' = not given), and what
    was given over each sale's applicable maximum rate (``limit_of`` by campaign)."""
    total, over = ZERO, ZERO
    by: tuple[dict[str, Decimal], ...] = ({}, {}, {})
    for sale in sales:
        total += sale.discount_amount
        excess = exceeded(sale, limit=limit_of.get(sale.campaign_id))
        if excess is not None:
            over += excess.amount_over
        for bucket, key in zip(by, (sale.reason, sale.partner_id, sale.campaign_id), strict=True):
            bucket[key] = bucket.get(key, ZERO) + sale.discount_amount
    share = (over / total).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP) if total else None
    return Analytics(
        total=total,
        over_limit=over,
        over_limit_share=share,
        by_reason=by[0],
        by_partner=by[1],
        by_campaign=by[2],
    )
