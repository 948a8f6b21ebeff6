"""Sales-target progress — pure, no I/O: sales attributed to the units of the sales-target tree,
each node's sales to date against its target, the run-rate forecast to the period's end, and
when a target is at risk (README "Sales-target progress").

Attribution is ``shared.sales_attribution``'s rule, the one planning's sales plans use too: a
sale counts for the rep, partner and region or division units its codes name and every unit
above them, each sale once per node; a company unit holds all sales. The warehouse sums sales
per (rep, partner, region, brand, currency) — a :class:`SaleGroup` — so the roll-up walks
groups, never single sales.

Run rate: the period runs from its first day 00:00 UTC to the day after its last; the forecast
is sales / elapsed time × the period's length (elapsed capped at the period's end), ``None``
before the period starts. Shares are sales / target and forecast / target, ``None`` for a zero
target (SPEC §4: a division by zero gives null).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from services.measurement.domain import money, ratio
from shared.events.kpi import SalesTargetAtRisk, SalesTargetRecovered
from shared.money import FxRates, in_currency
from shared.sales_attribution import SaleGroup, of_brand, roll_up


@dataclass(frozen=True)
class Unit:
    """A node of the sales-target tree as published by planning (``sales_unit.set``)."""

    unit_id: str
    kind: str
    name: str = ""
    owner: str = ""
    parent_id: str | None = None
    code: str | None = None


@dataclass(frozen=True)
class SalesTarget:
    """A unit's target for a period and a brand (``None``: all brands)."""

    target_id: str
    unit_id: str
    period: str
    period_start: dt.date
    period_end: dt.date
    amount: Decimal
    currency: str
    brand: str | None = None
    version: int = 1


@dataclass(frozen=True)
class AtRiskRule:
    """A target is at risk when its forecast share is below ``share``, once ``min_elapsed``
    of its period has passed (an early run rate says little)."""

    share: Decimal = Decimal("0.9")
    min_elapsed: Decimal = Decimal("0.2")


@dataclass(frozen=True)
class Pace:
    """How far a period has run and what the sales so far come to by its end."""

    elapsed_share: Decimal
    forecast: Decimal | None


@dataclass
class NodeProgress:
    """One unit's progress: its target (if any), sales to date in ``currency``, the amounts in
    currencies without a rate (kept apart, not added), shares and forecast."""

    unit: Unit
    target: SalesTarget | None
    currency: str
    sales: Decimal
    unconverted: dict[str, Decimal]
    forecast: Decimal | None
    share: Decimal | None
    forecast_share: Decimal | None
    at_risk: bool
    children: list[NodeProgress] = field(default_factory=list)


def pace(*, start: dt.date, end: dt.date, now: dt.datetime, sales: Decimal) -> Pace:
    """The elapsed share of the period ``start``..``end`` (days, inclusive) at ``now`` and the
    run-rate forecast of ``sales`` to its end (``None`` before it starts)."""
    begin = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    length = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC) - begin
    elapsed = min(max(now - begin, dt.timedelta(0)), length)
    spent, whole = (Decimal(span // dt.timedelta(microseconds=1)) for span in (elapsed, length))
    # sales × whole / elapsed, not sales / share: exact whenever the division is
    forecast = sales * whole / spent if spent else None
    return Pace(elapsed_share=spent / whole, forecast=forecast)


def is_at_risk(*, pace: Pace, forecast_share: Decimal | None, rule: AtRiskRule) -> bool:
    """Whether the forecast share is below the rule's share, late enough in the period."""
    if forecast_share is None or pace.elapsed_share < rule.min_elapsed:
        return False
    return forecast_share < rule.share


def progress_tree(
    *,
    units: Sequence[Unit],
    targets: Iterable[SalesTarget],
    groups: Iterable[SaleGroup],
    brand: str | None,
    start: dt.date,
    end: dt.date,
    now: dt.datetime,
    fx: FxRates,
    rule: AtRiskRule,
) -> list[NodeProgress]:
    """The unit tree (roots first, children by name) with every node's progress in the period
    for ``brand`` (``None``: all brands); a node without a target reports in ``fx.base``."""
    targets_of = {t.unit_id: t for t in targets if t.brand == brand}
    sales_of = roll_up(units, of_brand(groups, brand))
    nodes: dict[str, NodeProgress] = {}
    for unit in units:
        target = targets_of.get(unit.unit_id)
        currency = target.currency if target else fx.base
        sales, unconverted = in_currency(sales_of.get(unit.unit_id, {}), currency=currency, fx=fx)
        run = pace(start=start, end=end, now=now, sales=sales)
        amount = target.amount if target else None
        forecast_share = ratio(run.forecast, amount)
        nodes[unit.unit_id] = NodeProgress(
            unit=unit,
            target=target,
            currency=currency,
            sales=money(sales) or Decimal(0),
            unconverted=unconverted,
            forecast=money(run.forecast),
            share=ratio(sales, amount),
            forecast_share=forecast_share,
            at_risk=is_at_risk(pace=run, forecast_share=forecast_share, rule=rule),
        )
    return as_tree(units, nodes)


class _Node(Protocol):
    children: list[Any]


N = TypeVar("N", bound=_Node)


def as_tree(units: Sequence[Unit], nodes: Mapping[str, N]) -> list[N]:
    """The nodes (unit_id → node) arranged as the unit tree: roots first, children by name."""
    roots: list[N] = []
    for unit in sorted(units, key=lambda u: (u.name, u.unit_id)):
        node = nodes[unit.unit_id]
        parent = nodes.get(unit.parent_id) if unit.parent_id else None
        (parent.children if parent is not None else roots).append(node)
    return roots


@dataclass(frozen=True)
class PeriodProgress:
    """The progress tree of one period and brand (``None``: all brands)."""

    period: str
    start: dt.date
    end: dt.date
    brand: str | None
    units: list[NodeProgress]


def periods_progress(
    *,
    units: Sequence[Unit],
    targets: Iterable[SalesTarget],
    groups: Mapping[str, Iterable[SaleGroup]],
    now: dt.datetime,
    fx: FxRates,
    rule: AtRiskRule,
) -> list[PeriodProgress]:
    """A progress tree for every period and brand that has targets (``groups``: each period's
    sales), by the period's first day, then the shorter period, all brands before each brand."""
    by_period: dict[tuple[dt.date, dt.date, str], list[SalesTarget]] = defaultdict(list)
    for target in targets:
        by_period[(target.period_start, target.period_end, target.period)].append(target)
    out = []
    for (start, end, period), mine in sorted(by_period.items()):
        sales = list(groups.get(period, ()))
        for brand in sorted({t.brand for t in mine}, key=lambda b: (b is not None, b or "")):
            tree = progress_tree(
                units=units,
                targets=mine,
                groups=sales,
                brand=brand,
                start=start,
                end=end,
                now=now,
                fx=fx,
                rule=rule,
            )
            out.append(PeriodProgress(period=period, start=start, end=end, brand=brand, units=tree))
    return out


def walk(nodes: Iterable[NodeProgress]) -> Iterable[NodeProgress]:
    """Every node of the trees, parents before their children."""
    for node in nodes:
        yield node
        yield from walk(node.children)


AtRiskEvent = SalesTargetAtRisk | SalesTargetRecovered


def transitions(
    *,
    nodes: Iterable[NodeProgress],
    states: Mapping[str, bool],
    rule: AtRiskRule,
    now: dt.datetime,
) -> list[AtRiskEvent]:
    """The at-risk episodes that start (``sales_target.at_risk``) or end
    (``sales_target.recovered``: the forecast share back at or above the rule's share) among the
    nodes with a target; ``states`` holds which targets are at risk now (target_id → bool)."""
    events: list[AtRiskEvent] = []
    for node in nodes:
        target = node.target
        if target is None or node.forecast_share is None or node.forecast is None:
            continue
        was = states.get(target.target_id, False)
        if not was and node.at_risk:
            kind: type[AtRiskEvent] = SalesTargetAtRisk
        elif was and node.forecast_share >= rule.share:
            kind = SalesTargetRecovered
        else:
            continue
        events.append(
            kind(
                target_id=target.target_id,
                unit_id=target.unit_id,
                period=target.period,
                period_start=target.period_start,
                period_end=target.period_end,
                brand=target.brand,
                target=target.amount,
                currency=target.currency,
                sales=node.sales,
                forecast=node.forecast,
                forecast_share=node.forecast_share,
                threshold=rule.share,
                as_of=now,
            )
        )
    return events
