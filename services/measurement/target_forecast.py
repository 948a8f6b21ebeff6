"""Sales-target forecast — pure, no I/O: for every unit of the sales-target tree, its sales to
date, their run rate and the pipeline of its campaigns' open leads, added up to a forecast of its
sales at the period's end against its target (README "Sales-target forecast").

Which sales come from where. A campaign plans against one sales unit (``sales_unit_id`` of
``campaign.planned``); a unit's campaigns are those of the unit and of every unit beneath it.
A unit's sales to date (``progress``'s attribution) split in two:

* **campaign sales** — those attributed to one of the unit's campaigns. What those campaigns
  still bring before the period ends is forecast from their open leads (``pipeline``: measured
  stage conversion and stage-to-customer times, each lead's expected value or the measured
  average check), counting only the conversions expected within the period;
* **other sales** — the rest (no campaign, or a campaign planned against no unit or another
  unit). They continue at their run rate: other sales × the period's length / elapsed time.

forecast = campaign sales + pipeline revenue to the period's end + other sales' run rate. Each
sale is forecast by one method only, so nothing is counted twice; the price is that a unit's
campaign sales that come from no lead (repeat orders) are not projected. The plain run rate of
all sales (``progress``'s forecast) is reported beside it.

Run rate: sales × length / elapsed is the same figure as sales + sales per day × remaining
days; it is ``None`` before the period starts. gap = target − forecast (positive: short),
forecast share = forecast / target, on track = forecast ≥ target (``None`` without target or
forecast).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from services.measurement import pipeline
from services.measurement.domain import CENT, money, ratio
from services.measurement.progress import SalesTarget, Unit, as_tree, pace
from shared.money import FxRates, in_currency
from shared.sales_attribution import SaleGroup, of_brand, roll_up, with_ancestors


@dataclass(frozen=True)
class UnitPipeline:
    """The open leads of a unit's campaigns and the conversions expected from them before the
    period's end."""

    campaigns: tuple[str, ...]
    open_leads: int
    expected: pipeline.Amounts
    missing_rates: tuple[str, ...] = ()


@dataclass
class NodeForecast:
    """One unit's forecast to its period's end, amounts in ``currency`` (module docstring)."""

    unit: Unit
    target: SalesTarget | None
    currency: str
    sales: Decimal
    unconverted: dict[str, Decimal]
    run_rate: Decimal | None
    campaign_sales: Decimal
    other_sales: Decimal
    other_run_rate: Decimal | None
    pipeline: UnitPipeline | None
    forecast: Decimal | None
    gap: Decimal | None
    forecast_share: Decimal | None
    on_track: bool | None
    children: list[NodeForecast] = field(default_factory=list)


def period_end(end: dt.date) -> dt.datetime:
    """The end of a period whose last day is ``end``: the next day, 00:00 UTC."""
    return dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


def campaigns_of_units(
    units: Iterable[Unit], unit_of: Mapping[str, str]
) -> dict[str, tuple[str, ...]]:
    """unit_id → the campaigns planned against it or a unit beneath it (``unit_of``: campaign →
    its unit), sorted; units without any are left out."""
    parent = {unit.unit_id: unit.parent_id for unit in units}
    found: dict[str, set[str]] = defaultdict(set)
    for campaign_id, unit_id in unit_of.items():
        if unit_id in parent:  # a unit measurement does not know yet holds nothing
            for above in with_ancestors(unit_id, parent):
                found[above].add(campaign_id)
    return {unit_id: tuple(sorted(ids)) for unit_id, ids in found.items()}


def unit_pipeline(
    *,
    campaigns: Sequence[str],
    leads: Sequence[pipeline.OpenLeads],
    history: pipeline.History,
    as_of: dt.datetime,
    start: dt.date,
    end: dt.date,
    missing_rates: Sequence[str] = (),
) -> UnitPipeline:
    """The conversions expected from ``leads`` in the period ``start``..``end`` (days,
    inclusive) after ``as_of``."""
    begin = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    expected = pipeline.expected_by(
        leads=leads, history=history, as_of=as_of, since=max(as_of, begin), until=period_end(end)
    )
    return UnitPipeline(
        campaigns=tuple(campaigns),
        open_leads=sum(group.leads for group in leads),
        expected=expected,
        missing_rates=tuple(missing_rates),
    )


def _campaign_sales(
    units: Sequence[Unit],
    sales: Mapping[str, Iterable[SaleGroup]],
    campaigns_of: Mapping[str, Sequence[str]],
    brand: str | None,
) -> dict[str, dict[str, Decimal]]:
    """unit_id → {currency → its sales attributed to one of its campaigns}."""
    linked = {c for ids in campaigns_of.values() for c in ids}
    per_campaign = {c: roll_up(units, of_brand(sales.get(c, ()), brand)) for c in linked}
    out: dict[str, dict[str, Decimal]] = {}
    for unit_id, ids in campaigns_of.items():
        amounts: dict[str, Decimal] = defaultdict(Decimal)
        for campaign_id in ids:
            for currency, amount in per_campaign[campaign_id].get(unit_id, {}).items():
                amounts[currency] += amount
        out[unit_id] = dict(amounts)
    return out


def _cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def _sum(*parts: Decimal | None) -> Decimal | None:
    total = Decimal(0)
    for part in parts:
        if part is None:
            return None
        total += part
    return total


def forecast_tree(
    *,
    units: Sequence[Unit],
    targets: Iterable[SalesTarget],
    sales: Mapping[str, Iterable[SaleGroup]],
    campaigns_of: Mapping[str, Sequence[str]],
    pipelines: Mapping[str, UnitPipeline],
    brand: str | None,
    start: dt.date,
    end: dt.date,
    now: dt.datetime,
    fx: FxRates,
) -> list[NodeForecast]:
    """The unit tree (roots first, children by name) with every node's forecast for ``brand``
    (``None``: all brands); ``sales`` are the period's sales to ``now`` by campaign ('' for
    none), ``pipelines`` each unit's in its currency (a target's, else ``fx.base``)."""
    targets_of = {t.unit_id: t for t in targets if t.brand == brand}
    every = [group for groups in sales.values() for group in groups]
    total_of = roll_up(units, of_brand(every, brand))
    linked_of = _campaign_sales(units, sales, campaigns_of, brand)
    nodes: dict[str, NodeForecast] = {}
    for unit in units:
        target = targets_of.get(unit.unit_id)
        currency = target.currency if target else fx.base
        totals, linked = total_of.get(unit.unit_id, {}), linked_of.get(unit.unit_id, {})
        others = {c: amount - linked.get(c, Decimal(0)) for c, amount in totals.items()}
        total, unconverted = in_currency(totals, currency=currency, fx=fx)
        campaign, _ = in_currency(linked, currency=currency, fx=fx)
        other, _ = in_currency(others, currency=currency, fx=fx)
        other_rate = pace(start=start, end=end, now=now, sales=other).forecast
        found = pipelines.get(unit.unit_id)
        expected = found.expected.revenue if found else Decimal(0)
        forecast = money(_sum(campaign, expected, other_rate))
        amount = target.amount if target else None
        nodes[unit.unit_id] = NodeForecast(
            unit=unit,
            target=target,
            currency=currency,
            sales=_cents(total),
            unconverted=unconverted,
            run_rate=money(pace(start=start, end=end, now=now, sales=total).forecast),
            campaign_sales=_cents(campaign),
            other_sales=_cents(other),
            other_run_rate=money(other_rate),
            pipeline=found,
            forecast=forecast,
            gap=None if amount is None or forecast is None else amount - forecast,
            forecast_share=ratio(forecast, amount),
            on_track=None if amount is None or forecast is None else forecast >= amount,
        )
    return as_tree(units, nodes)
