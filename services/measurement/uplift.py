"""Promotion uplift of a campaign (issue 9 §3) by before / during / after — pure, no I/O.

What the campaign promoted are the (product_id, partner_id) pairs of its own attributed sales
(a sale naming neither tells nothing and is left out). All sales of those pairs, whichever
campaign they are attributed to or none, are then measured in three windows, cut at midnight
UTC of the campaign's dates:

* **before** — the ``weeks_before`` (N, default 8) weeks of 7 days just before the start: the
  *baseline* is their average week, units and revenue;
* **during** — the campaign's dates, start to end inclusive (``end + 1 day`` exclusive), so a
  31-day campaign lasts 31/7 weeks;
* **after** — the ``weeks_after`` (M, default 4) weeks from the day after the end.

A window counts only its time elapsed by ``as_of``: a campaign still running is compared with
the baseline over its days so far, and an after-window not yet over does not read as a dip.

Units are orders: ``sale.completed`` carries no quantity, so each sale is one unit. Amounts are
in the campaign's currency (the warehouse converts other currencies); an amount with a part
without an FX rate is ``None``, and so is everything computed from it.

* expected = baseline per week × the window's elapsed weeks; incremental = actual − expected
  (during), dip = actual − expected (after: negative when sales fall below the baseline after
  the campaign, e.g. customers who bought ahead);
* incremental gross profit = incremental revenue × the campaign's gross margin (the margin the
  campaign's own KPIs use; the revenue is what customers paid, so net of discounts);
* discounts = every discount given on those pairs during the campaign, all counted as the
  promotion's (the regular discounts of the baseline are not netted out: a conservative ROI);
* cost = the campaign's whole spend, whenever booked (production before the start is cost too);
* promotion ROI = (incremental gross profit − cost − discounts) / (cost + discounts); ``None``
  when the denominator is zero. The dip is reported beside it, not deducted from it;
* net = incremental + dip (units, revenue, gross profit: what the promotion added once the
  weeks after it are counted; a rise after it counts as much as a fall) and the net promotion
  ROI = (net gross profit − cost − discounts) / (cost + discounts).

**Control group** (optional, ``control_sales``): partners outside the promotion selling the
same products show how sales would have moved anyway (season, prices, market). The control
baseline scales the before-baseline by the control's change: expected in a window = the
promoted pairs' sales before × the control's sales in the window / the control's sales before
(units and revenue each; the ratio form of difference-in-differences, which assumes the
promoted pairs would have moved in proportion with the control). It is used when asked for and
the control sold something in the weeks before; otherwise the before-baseline is used and the
reason is said.

Everything is computed exactly (fractions) and rounded once: units to 2 places (a baseline is
an average), money to cents, ratios to 6 places, half up.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Literal

DEFAULT_WEEKS_BEFORE = 8
DEFAULT_WEEKS_AFTER = 4
MAX_WEEKS = 104
WEEK = dt.timedelta(days=7)
Window = Literal["before", "during", "after"]
WINDOWS: tuple[Window, ...] = ("before", "during", "after")
Number = Fraction | None


@dataclass(frozen=True)
class WeekSales:
    """The sales of the promoted pairs in one week of a window (week 0 starts with it); the
    last week of ``during`` may be shorter. Amounts in the campaign's currency, ``None`` when
    a part has no FX rate."""

    window: Window
    week: int
    units: int
    revenue: Decimal | None
    discounts: Decimal | None


@dataclass(frozen=True)
class Bounds:
    """A window's time range [start, end)."""

    start: dt.datetime
    end: dt.datetime


def windows(
    *, start_date: dt.date, end_date: dt.date, weeks_before: int, weeks_after: int
) -> dict[Window, Bounds]:
    """The before, during and after windows of a campaign running ``start_date`` to
    ``end_date`` inclusive, cut at midnight UTC."""
    start = dt.datetime.combine(start_date, dt.time(), dt.UTC)
    end = dt.datetime.combine(end_date + dt.timedelta(days=1), dt.time(), dt.UTC)
    return {
        "before": Bounds(start - weeks_before * WEEK, start),
        "during": Bounds(start, end),
        "after": Bounds(end, end + weeks_after * WEEK),
    }


@dataclass(frozen=True)
class Measured:
    """One window's sales: its bounds, the weeks of it elapsed by ``as_of`` and its sums."""

    bounds: Bounds
    weeks: Fraction
    units: int
    revenue: Number
    discounts: Number


@dataclass(frozen=True)
class Change:
    """Actual − expected of a window: units, revenue and gross profit (``None`` when the
    baseline or an amount is unknown)."""

    units: Number
    revenue: Number
    gross_profit: Number


@dataclass(frozen=True)
class Expected:
    """A baseline's expected units and revenue over a window's elapsed weeks."""

    units: Number
    revenue: Number


@dataclass(frozen=True)
class Estimate:
    """What one baseline makes of the actual sales: expected during and after, incremental,
    dip, net, and the promotion ROI without and with the dip."""

    during: Expected
    after: Expected
    incremental: Change
    dip: Change
    net: Change
    promotion_roi: Number
    net_promotion_roi: Number


@dataclass(frozen=True)
class Control:
    """The control partners' sales in the same windows, their change against the weeks before
    (``None`` when undefined) and the estimate of the control baseline (``None`` with the
    ``reason`` when it cannot serve)."""

    before: Measured
    during: Measured
    after: Measured
    during_change: Expected
    after_change: Expected
    estimate: Estimate | None
    reason: str | None


Baseline = Literal["before", "control"]


@dataclass(frozen=True)
class Uplift:
    """The measures of a campaign's promotion uplift (module docstring)."""

    before: Measured
    during: Measured
    after: Measured
    units_per_week: Number
    """The baseline: average units of a week before (``None`` when no week has elapsed)."""
    revenue_per_week: Number
    cost: Number
    discounts: Number
    baseline: Estimate
    """The estimate of the before-baseline."""
    control: Control | None
    """The control group, when asked for."""

    @property
    def used(self) -> Baseline:
        """The baseline the headline figures use: the control's when it can serve."""
        return "control" if self.control and self.control.estimate else "before"

    @property
    def estimate(self) -> Estimate:
        """The estimate of the baseline used."""
        if self.control is not None and self.control.estimate is not None:
            return self.control.estimate
        return self.baseline

    @property
    def incremental(self) -> Change:
        """During − expected, by the baseline used."""
        return self.estimate.incremental

    @property
    def dip(self) -> Change:
        """After − expected, by the baseline used."""
        return self.estimate.dip

    @property
    def promotion_roi(self) -> Number:
        """The promotion ROI by the baseline used."""
        return self.estimate.promotion_roi

    def expected(self, window: Measured) -> tuple[Number, Number]:
        """Before-baseline units and revenue over the elapsed weeks of ``window``."""
        return _times(self.units_per_week, window.weeks), _times(
            self.revenue_per_week, window.weeks
        )


def _add(a: Number, b: Decimal | None) -> Number:
    return None if a is None or b is None else a + Fraction(b)


def _plus(a: Number, b: Number) -> Number:
    return None if a is None or b is None else a + b


def _times(a: Number, b: Number) -> Number:
    return None if a is None or b is None else a * b


def _minus(a: Number, b: Number) -> Number:
    return None if a is None or b is None else a - b


def _per(a: Number, b: Fraction) -> Number:
    return None if a is None or not b else a / b


def _elapsed(bounds: Bounds, as_of: dt.datetime) -> Fraction:
    """The weeks of ``bounds`` elapsed by ``as_of``, exactly (to the microsecond)."""
    elapsed = min(max(as_of - bounds.start, dt.timedelta()), bounds.end - bounds.start)
    return Fraction(elapsed // dt.timedelta(microseconds=1), WEEK // dt.timedelta(microseconds=1))


def _measure(
    window: Window, bounds: Bounds, sales: list[WeekSales], as_of: dt.datetime
) -> Measured:
    units = 0
    revenue: Number = Fraction(0)
    discounts: Number = Fraction(0)
    for week in sales:
        if week.window == window:
            units += week.units
            revenue, discounts = _add(revenue, week.revenue), _add(discounts, week.discounts)
    return Measured(bounds, _elapsed(bounds, as_of), units, revenue, discounts)


def _estimate(
    during: Measured,
    after: Measured,
    expected: tuple[Expected, Expected],
    *,
    margin: Fraction,
    invested: Number,
) -> Estimate:
    """Incremental, dip, net and both ROIs of the actual windows against ``expected``."""

    def change(window: Measured, exp: Expected) -> Change:
        units = _minus(Fraction(window.units), exp.units)
        revenue = _minus(window.revenue, exp.revenue)
        return Change(units, revenue, _times(revenue, margin))

    def roi(gross_profit: Number) -> Number:
        gain = _minus(gross_profit, invested)
        return None if gain is None or not invested else gain / invested

    incremental, dip = change(during, expected[0]), change(after, expected[1])
    net = Change(
        _plus(incremental.units, dip.units),
        _plus(incremental.revenue, dip.revenue),
        _plus(incremental.gross_profit, dip.gross_profit),
    )
    return Estimate(
        during=expected[0],
        after=expected[1],
        incremental=incremental,
        dip=dip,
        net=net,
        promotion_roi=roi(incremental.gross_profit),
        net_promotion_roi=roi(net.gross_profit),
    )


def _change(window: Measured, before: Measured) -> Expected:
    """The control's per-week sales in ``window`` / its per-week sales before."""
    if not window.weeks or not before.weeks:
        return Expected(None, None)
    units = _per(_per(Fraction(window.units), window.weeks), before.units / before.weeks)
    rate = _per(window.revenue, window.weeks)
    revenue = None if before.revenue is None else _per(rate, before.revenue / before.weeks)
    return Expected(units, revenue)


def _control(
    before: Measured, control: dict[Window, Measured], sales: list[WeekSales]
) -> tuple[tuple[Expected, Expected] | None, str | None]:
    """The control baseline's expected during and after (the promoted pairs' sales before × the
    control's in the window / the control's before), or why there is none."""
    base = control["before"]
    if not sales:
        return None, "no partner outside the promotion sold the promoted products"
    if base.units == 0:
        return None, "the control partners sold none of the promoted products in the weeks before"

    def expected(window: Measured) -> Expected:
        units = Fraction(before.units * window.units, base.units)
        scale = _per(window.revenue, base.revenue) if base.revenue else None
        return Expected(units, _times(before.revenue, scale))

    return (expected(control["during"]), expected(control["after"])), None


def uplift(
    *,
    start_date: dt.date,
    end_date: dt.date,
    gross_margin: Decimal,
    cost: Decimal | None,
    sales: Iterable[WeekSales],
    as_of: dt.datetime,
    weeks_before: int = DEFAULT_WEEKS_BEFORE,
    weeks_after: int = DEFAULT_WEEKS_AFTER,
    control_sales: Iterable[WeekSales] | None = None,
) -> Uplift:
    """Baseline, actual during and after, incremental units, revenue and gross profit, dip, net
    and promotion ROI of a campaign from the weekly sales of the pairs it promoted; with
    ``control_sales`` (the control partners' weekly sales) also by the control baseline."""
    bounds = windows(
        start_date=start_date, end_date=end_date, weeks_before=weeks_before, weeks_after=weeks_after
    )
    rows = list(sales)
    before, during, after = (_measure(w, bounds[w], rows, as_of) for w in WINDOWS)
    units_per_week = _per(Fraction(before.units), before.weeks)
    revenue_per_week = _per(before.revenue, before.weeks)
    spent = None if cost is None else Fraction(cost)
    invested = None if spent is None or during.discounts is None else spent + during.discounts
    margin = Fraction(gross_margin)

    def by_week(window: Measured) -> Expected:
        return Expected(
            _times(units_per_week, window.weeks), _times(revenue_per_week, window.weeks)
        )

    baseline = _estimate(
        during, after, (by_week(during), by_week(after)), margin=margin, invested=invested
    )
    control = None
    if control_sales is not None:
        others = list(control_sales)
        measured = {w: _measure(w, bounds[w], others, as_of) for w in WINDOWS}
        expected, reason = _control(before, measured, others)
        control = Control(
            before=measured["before"],
            during=measured["during"],
            after=measured["after"],
            during_change=_change(measured["during"], measured["before"]),
            after_change=_change(measured["after"], measured["before"]),
            estimate=None
            if expected is None
            else _estimate(during, after, expected, margin=margin, invested=invested),
            reason=reason,
        )
    return Uplift(
        before=before,
        during=during,
        after=after,
        units_per_week=units_per_week,
        revenue_per_week=revenue_per_week,
        cost=spent,
        discounts=during.discounts,
        baseline=baseline,
        control=control,
    )


def rounded(value: Number, places: int) -> Decimal | None:
    """``value`` rounded half up (away from zero) to ``places`` decimals."""
    if value is None:
        return None
    scaled = abs(value) * 10**places
    whole = int(scaled + Fraction(1, 2))
    return (Decimal(whole if value >= 0 else -whole)).scaleb(-places)
