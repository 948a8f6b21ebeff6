"""KPI arithmetic of SPEC §4, the integral score (CKPI) and KPI-target evaluation — pure, no I/O.

ClickHouse delivers raw aggregates (:class:`Measures`); everything derived from them — ratios,
rounding, division by zero, directions, breach/recovery with hysteresis — is decided here, so
it is tested without a database and one piece of code serves campaigns, plans and the company.

Rounding: money KPIs are ``Decimal`` quantized to cents, ratio KPIs ``Decimal`` quantized to
6 places (``ctr`` 0.0125 means 1.25 %), counts are ``int``; both ROUND_HALF_UP. Ratios are always
computed from exact numerators and denominators, never from rounded KPIs. Undefined values
(a division by zero) are ``None``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from shared.events.envelope import EventData
from shared.events.ingest import FUNNEL, SaleCompleted, SpendRecorded
from shared.events.kpi import KpiTargetBreached, KpiTargetRecovered
from shared.events.planning import KpiDirection
from shared.kpis import KPI_NAMES
from shared.money import FxRates, cents

CENT = Decimal("0.01")
RATIO_PLACES = 6
CKPI_CAP = Decimal("1.5")
LOST_RANK = -1

FUNNEL_STAGES: tuple[str, ...] = FUNNEL
"""visitor < lead < mql < sql < sal < opportunity < customer; ``lost`` ranks nowhere."""

CONVERSIONS: tuple[tuple[str, str, str], ...] = (
    *((f"{a}_to_{b}", a, b) for a, b in itertools.pairwise(FUNNEL)),
    ("lead_to_customer", "lead", "customer"),
)
"""(name, from stage, to stage) of every reported stage conversion."""

MONEY_KPIS: frozenset[str] = frozenset(
    {"spend", "cpc", "cpl", "cac", "revenue", "gross_profit", "discounts", "average_check"}
    | {"ltv", "budget", "forecast_at_completion"}
)


_CAUSES = uuid.UUID("0b6f3e0c-56a4-4c8e-9d0e-3a8f1f2f6c11")


def cause_event_id(*cause: object) -> uuid.UUID:
    """The event id of an outgoing event, derived from its cause (uuid5): replicas or a re-run
    that act on the same cause publish the same id, which consumers dedupe on."""
    return uuid.uuid5(_CAUSES, "|".join(str(part) for part in cause))


def stage_rank(stage: str) -> int:
    """Position of a stage in the funnel (visitor = 0 … customer = 6); ``lost`` is -1."""
    return FUNNEL.index(stage) if stage in FUNNEL else LOST_RANK


def _dec(value: Decimal | int | float | str | None) -> Decimal | None:
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


def ratio(
    num: Decimal | int | None, den: Decimal | int | None, *, places: int = RATIO_PLACES
) -> Decimal | None:
    """``num / den`` rounded half-up to ``places`` decimals; ``None`` if undefined (den 0/None)."""
    n, d = _dec(num), _dec(den)
    if n is None or d is None or d == 0:
        return None
    return (n / d).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def money(value: Decimal | int | None) -> Decimal | None:
    """An amount quantized half-up to cents (``None`` stays ``None``)."""
    v = _dec(value)
    return None if v is None else v.quantize(CENT, rounding=ROUND_HALF_UP)


def _exact(num: Decimal | int | None, den: Decimal | int | None) -> Decimal | None:
    n, d = _dec(num), _dec(den)
    return None if n is None or d is None or d == 0 else n / d


@dataclass(frozen=True)
class Measures:
    """Raw aggregates of one scope and period, as the warehouse computes them.

    ``reached[i]`` is the number of distinct leads whose highest stage in the period is
    ``FUNNEL[i]`` or later. ``buyers`` / ``repeat_buyers`` are customers with ≥ 1 / ≥ 2 orders
    in the period; ``ltv_customers`` are customers whose first sale ever is in the scope and
    ``ltv_gross_profit`` the gross profit of all their sales ever. An amount is ``None`` when
    it cannot be told in the scope's currency (no FX rate for some of it): every KPI computed
    from it is ``None`` too.
    """

    spend: Decimal | None = Decimal(0)
    impressions: int = 0
    clicks: int = 0
    reached: tuple[int, ...] = (0,) * len(FUNNEL)
    lost: int = 0
    revenue: Decimal | None = Decimal(0)
    gross_profit: Decimal | None = Decimal(0)
    discounts: Decimal | None = Decimal(0)
    orders: int = 0
    buyers: int = 0
    repeat_buyers: int = 0
    new_customers: int = 0
    ltv_customers: int = 0
    ltv_gross_profit: Decimal | None = Decimal(0)
    budget: Decimal | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None


def elapsed_share(*, start_date: dt.date, end_date: dt.date, as_of: dt.datetime) -> Decimal:
    """Share of ``[start_date, end_date]`` (end day inclusive) elapsed at ``as_of``, in [0, 1]."""
    begin = dt.datetime.combine(start_date, dt.time(), dt.UTC)
    finish = dt.datetime.combine(end_date + dt.timedelta(days=1), dt.time(), dt.UTC)
    total = (finish - begin).total_seconds()
    if total <= 0:
        return Decimal(1)
    done = (as_of - begin).total_seconds()
    return min(max(Decimal(str(done)) / Decimal(str(total)), Decimal(0)), Decimal(1))


def forecast_at_completion(
    *,
    spend: Decimal | None,
    start_date: dt.date | None,
    end_date: dt.date | None,
    as_of: dt.datetime,
) -> Decimal | None:
    """Spend at the campaign's end at the current burn rate: spend / elapsed share of duration."""
    if start_date is None or end_date is None:
        return None
    share = elapsed_share(start_date=start_date, end_date=end_date, as_of=as_of)
    return money(_exact(spend, share))


def funnel_conversions(reached: Sequence[int]) -> dict[str, Decimal | None]:
    """Every stage conversion X→Y: leads reaching Y or later / leads reaching X or later."""
    return {
        name: ratio(reached[FUNNEL.index(b)], reached[FUNNEL.index(a)])
        for name, a, b in CONVERSIONS
    }


def compute_kpis(measures: Measures, *, as_of: dt.datetime) -> dict[str, Any]:
    """Every SPEC §4 KPI of a scope from its raw aggregates (CKPI excluded: it needs targets)."""
    m = measures
    leads = m.reached[FUNNEL.index("lead")]
    cac = _exact(m.spend, m.new_customers)
    ltv = _exact(m.ltv_gross_profit, m.ltv_customers)
    romi = roi = None
    if m.spend is not None and m.gross_profit is not None:
        romi = ratio(m.gross_profit - m.spend, m.spend)
        if m.discounts is not None:
            roi = ratio(m.gross_profit - m.spend - m.discounts, m.spend + m.discounts)
    return {
        "spend": money(m.spend),
        "impressions": m.impressions,
        "clicks": m.clicks,
        "ctr": ratio(m.clicks, m.impressions),
        "cpc": money(_exact(m.spend, m.clicks)),
        "leads": leads,
        "cpl": money(_exact(m.spend, leads)),
        "funnel": dict(zip(FUNNEL, m.reached, strict=True)),
        "lost": m.lost,
        "conversions": funnel_conversions(m.reached),
        "new_customers": m.new_customers,
        "cac": money(cac),
        "revenue": money(m.revenue),
        "gross_profit": money(m.gross_profit),
        "romi": romi,
        "roi": roi,
        "discounts": money(m.discounts),
        "orders": m.orders,
        "average_check": money(_exact(m.revenue, m.orders)),
        "customers": m.buyers,
        "repeat_purchase_rate": ratio(m.repeat_buyers, m.buyers),
        "ltv_customers": m.ltv_customers,
        "ltv": money(ltv),
        "ltv_cac": ratio(ltv, cac),
        "marketing_pct_of_sales": ratio(m.spend, m.revenue),
        "budget": money(m.budget),
        "budget_utilisation": ratio(m.spend, m.budget),
        "forecast_at_completion": forecast_at_completion(
            spend=m.spend, start_date=m.start_date, end_date=m.end_date, as_of=as_of
        ),
    }


@dataclass(frozen=True)
class Target:
    """A campaign's KPI target (latest ``kpi_target.set``)."""

    target_id: str
    campaign_id: str
    kpi: str
    target: Decimal
    direction: KpiDirection
    weight: Decimal = Decimal(1)
    tolerance: Decimal = Decimal("0.05")


def kpi_value(kpis: Mapping[str, Any], name: str) -> Decimal | None:
    """The actual of KPI ``name`` in a KPI dict; conversions may be named with or without prefix."""
    if name in kpis and not isinstance(kpis[name], Mapping):
        return _dec(kpis[name])
    short = name.removeprefix("conversions.")
    return _dec(kpis.get("conversions", {}).get(short))


def achievement(*, target: Target, actual: Decimal | None) -> Decimal | None:
    """aᵢ of SPEC §4: actual/target (higher is better) or target/actual; ``None`` if undefined."""
    if actual is None:
        return None
    if target.direction == "lower_is_better":
        return _exact(target.target, actual)
    return _exact(actual, target.target)


def ckpi(*, kpis: Mapping[str, Any], targets: Sequence[Target]) -> Decimal | None:
    """Σ wᵢ·min(aᵢ, 1.5) / Σ wᵢ × 100 over targets with a defined aᵢ, to 2 places; else ``None``."""
    return _score((t, kpi_value(kpis, t.kpi)) for t in targets)


def plan_ckpi(
    *, campaign_kpis: Mapping[str, Mapping[str, Any]], targets: Sequence[Target]
) -> Decimal | None:
    """CKPI over all targets of several campaigns, each judged on its own campaign's KPIs."""
    return _score(
        (t, kpi_value(campaign_kpis[t.campaign_id], t.kpi))
        for t in targets
        if t.campaign_id in campaign_kpis
    )


def _score(pairs: Iterable[tuple[Target, Decimal | None]]) -> Decimal | None:
    num, den = Decimal(0), Decimal(0)
    for target, actual in pairs:
        a = achievement(target=target, actual=actual)
        if a is None:
            continue
        num += target.weight * min(a, CKPI_CAP)
        den += target.weight
    return ratio(num * 100, den, places=2)


def is_breached(*, target: Target, actual: Decimal) -> bool:
    """Worse than the target by more than its relative tolerance."""
    band = target.tolerance * abs(target.target)
    if target.direction == "lower_is_better":
        return actual > target.target + band
    return actual < target.target - band


def is_met(*, target: Target, actual: Decimal) -> bool:
    """At or better than the target itself (the recovery condition)."""
    if target.direction == "lower_is_better":
        return actual <= target.target
    return actual >= target.target


def next_state(*, target: Target, actual: Decimal | None, breached: bool) -> bool:
    """The breach state after observing ``actual``; inside the tolerance band nothing changes."""
    if actual is None:
        return breached
    if breached:
        return not is_met(target=target, actual=actual)
    return is_breached(target=target, actual=actual)


def evaluate_targets(
    *,
    campaign_id: str,
    plan_id: str | None,
    kpis: Mapping[str, Any],
    targets: Sequence[Target],
    states: Mapping[str, bool],
    now: dt.datetime | None = None,
) -> tuple[list[EventData], dict[str, bool]]:
    """Breach / recovery payloads for state transitions only, and the new state of every target.

    ``states`` maps target_id → breached (absent = not breached). Deterministic: evaluating the
    returned state again with the same KPIs emits nothing. ``now`` is accepted for callers that
    pass the evaluation time; the payloads carry none (the envelope's ``occurred_at`` does).
    """
    del now
    events: list[EventData] = []
    new_states: dict[str, bool] = dict(states)
    for target in sorted(targets, key=lambda t: t.target_id):
        if target.campaign_id != campaign_id:
            continue
        actual = kpi_value(kpis, target.kpi)
        before = states.get(target.target_id, False)
        after = next_state(target=target, actual=actual, breached=before)
        new_states[target.target_id] = after
        if after != before:
            model = KpiTargetBreached if after else KpiTargetRecovered
            events.append(
                model(
                    campaign_id=campaign_id,
                    plan_id=plan_id,
                    target_id=target.target_id,
                    kpi=target.kpi,
                    target=target.target,
                    actual=actual,
                    direction=target.direction,
                )
            )
    return events, new_states


def in_campaign_currency(
    data: EventData, *, campaign_currency: str | None, fx: FxRates
) -> EventData:
    """Spend or a sale expressed in its campaign's currency (the default currency when the
    campaign is unknown or the sale unattributed); ``CurrencyNotConvertible`` without a rate."""
    if not isinstance(data, SpendRecorded | SaleCompleted):
        return data
    target = campaign_currency or fx.base
    if data.currency == target:
        return data

    def converted(amount: Decimal) -> Decimal:
        return cents(fx.convert(amount, source=data.currency, target=target))

    update: dict[str, Any] = {"amount": converted(data.amount), "currency": target}
    if isinstance(data, SaleCompleted):
        update["discount_amount"] = converted(data.discount_amount)
        if data.list_price is not None:  # rounded as amount is, so it stays ≥ amount
            update["list_price"] = converted(data.list_price)
    return data.model_copy(update=update)


def snapshot_values(kpis: Mapping[str, Any]) -> dict[str, Decimal | None]:
    """The numeric KPIs of a campaign's KPI set, conversions flattened, for ``kpi.snapshot``."""
    values: dict[str, Decimal | None] = {}
    for name, value in kpis.items():
        if name == "conversions" and isinstance(value, Mapping):
            values.update({step: _dec(ratio_) for step, ratio_ in value.items()})
        elif isinstance(value, Decimal | int) and not isinstance(value, bool):
            values[name] = Decimal(value)
        elif value is None and name in KPI_NAMES:
            values[name] = None
    return values


# --------------------------------------------------------------------------------------------
# evidence before judging (the reallocation rules: ``reallocation``)
# --------------------------------------------------------------------------------------------


def has_evidence(*, spend: Decimal | None, budget: Decimal | None, min_share: Decimal) -> bool:
    """Whether a campaign has spent enough to be judged: at least ``min_share`` of its budget
    (any spend at all when it has no budget); a zero share judges every campaign."""
    if min_share <= 0:
        return True
    spent = spend or Decimal(0)
    if not budget:
        return spent > 0
    return spent >= min_share * budget
