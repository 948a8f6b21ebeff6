"""Pipeline forecast: the customers and revenue expected per week ahead from the open leads —
pure, no I/O.

Method. A lead is open when its highest stage is below ``customer`` and it was never lost. For
an open lead at stage *s* that entered *s* ``a`` days ago:

* ``p`` — the measured conversion from *s* to customer in the scope's history: leads whose
  highest stage is customer / leads whose highest stage is *s* or later (SPEC §4's stage
  conversion, which is also the product of the stage-to-stage conversions from *s* on);
* ``D`` — the measured days from first reaching *s* to first reaching customer, one value per
  converted lead that has both events (an empirical distribution: no shape is assumed, and it
  is what ``/funnel/durations`` measures, taken up to customer);
* the lead has already waited ``a`` days without converting, so only the durations longer
  than ``a`` remain possible: with ``S`` = the share of ``D`` above ``a``, the lead converts
  with ``q = p·S / (1 − p + p·S)`` (Bayes: converters still waiting / everyone still waiting),
  on the day it entered *s* plus each remaining duration, each equally likely. A lead older
  than every measured duration is stale and expects nothing; a lead whose stage has no
  measured duration cannot be placed in a week and counts under ``later``.

Week *k* (1 … ``weeks``) is [as_of + 7(k−1) days, as_of + 7k days); what falls after the last
week counts under ``later``. A lead's revenue is its ``expected_value`` when given, else the
measured average check (revenue / orders of the scope's sales); expected revenue is
probability × value, ``None`` when a lead that may convert has no value at all.

Figures are exact fractions until the end: customers are rounded half-up to 2 places,
revenue to cents, probabilities to 6 places, days to 2.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from services.measurement.domain import FUNNEL_STAGES

CUSTOMER = FUNNEL_STAGES.index("customer")
OPEN_STAGES: tuple[str, ...] = FUNNEL_STAGES[:CUSTOMER]
DEFAULT_WEEKS = 12
MAX_WEEKS = 104
_DAY_MS = 86_400_000
_WEEK = Fraction(7)


@dataclass(frozen=True)
class OpenLeads:
    """Open leads that entered the same stage at the same time (one or many)."""

    stage: str
    entered_at: dt.datetime
    leads: int
    valued: int = 0
    """How many of them carry an expected value."""
    value_sum: Decimal | None = Decimal(0)
    """Σ expected value of those, in the forecast's currency; ``None`` when it cannot be
    expressed in it (no FX rate)."""


@dataclass(frozen=True)
class History:
    """What the scope's history measured."""

    reached: Sequence[int]
    """Leads whose highest stage is each funnel stage or later (visitor … customer)."""
    days_to_customer: Mapping[str, Sequence[Fraction]]
    """Stage → the measured days from first reaching it to first reaching customer."""
    average_check: Decimal | None
    """Revenue / orders of the scope's sales; ``None`` without sales."""


@dataclass(frozen=True)
class Amounts:
    """Expected customers and revenue (``None``: some lead that may convert has no value)."""

    customers: Decimal
    revenue: Decimal | None


@dataclass(frozen=True)
class Week:
    """One week ahead."""

    week: int
    start: dt.datetime
    end: dt.datetime
    expected: Amounts


@dataclass(frozen=True)
class StageRate:
    """The rates used for the open leads of one stage."""

    stage: str
    open_leads: int
    reached: int
    to_next: Decimal | None
    to_customer: Decimal | None
    median_days_to_customer: Decimal | None
    timed_customers: int
    """How many measured durations the timing rests on."""


@dataclass(frozen=True)
class Forecast:
    """Expected customers and revenue per week ahead, in total and after the horizon."""

    weeks: list[Week]
    totals: Amounts
    later: Amounts
    open_leads: int
    rates: list[StageRate]


def _ratio(num: Fraction | int, den: int) -> Fraction | None:
    return None if den == 0 else Fraction(num) / den


def _round(value: Fraction, places: int) -> Decimal:
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def days(ms: int) -> Fraction:
    """Milliseconds as exact days."""
    return Fraction(ms, _DAY_MS)


class _Tally:
    """Exact sums of one bucket; revenue turns unknown once a valueless lead may convert."""

    def __init__(self) -> None:
        self.customers = Fraction(0)
        self.revenue: Fraction | None = Fraction(0)

    def add(self, probability: Fraction, value: Fraction | None) -> None:
        if probability == 0:
            return
        self.customers += probability
        if self.revenue is not None:
            self.revenue = None if value is None else self.revenue + probability * value

    def amounts(self) -> Amounts:
        revenue = None if self.revenue is None else _round(self.revenue, 2)
        return Amounts(customers=_round(self.customers, 2), revenue=revenue)


def _mean_value(group: OpenLeads, average_check: Decimal | None) -> Fraction | None:
    """The group's average value per lead; ``None`` when some lead has none."""
    unvalued, given = group.leads - group.valued, group.value_sum
    if given is None or (unvalued and average_check is None):
        return None
    fill = Fraction(average_check) * unvalued if average_check is not None else Fraction(0)
    return (Fraction(given) + fill) / group.leads


def conditional_conversion(p: Fraction, remaining: int, measured: int) -> Fraction:
    """Probability that a lead still waiting converts: converters still waiting (``p`` × the
    share of ``measured`` durations, ``remaining`` of them, longer than its wait) / all still
    waiting."""
    if measured == 0 or p == 0:
        return Fraction(0)
    waiting = p * Fraction(remaining, measured)
    everyone = 1 - p + waiting
    return Fraction(0) if everyone == 0 else waiting / everyone


def _arrivals(
    leads: Sequence[OpenLeads], history: History, as_of: dt.datetime
) -> Iterator[tuple[Fraction | None, Fraction, Fraction | None]]:
    """Every possible conversion of the open leads: (days from ``as_of`` to it, ``None`` when
    it cannot be placed in time; expected customers; value per customer)."""
    reached = history.reached
    customers = reached[CUSTOMER]
    for group in leads:
        rank = FUNNEL_STAGES.index(group.stage)
        if rank >= CUSTOMER:
            raise ValueError(f"stage: {group.stage} is not an open stage")
        p = _ratio(customers, reached[rank]) or Fraction(0)
        measured = list(history.days_to_customer.get(group.stage, ()))
        value = _mean_value(group, history.average_check)
        if not measured:
            yield None, p * group.leads, value
            continue
        waited = days(int((as_of - group.entered_at) / dt.timedelta(milliseconds=1)))
        remaining = [d for d in measured if d > waited]
        q = conditional_conversion(p, len(remaining), len(measured))
        if q == 0:
            continue
        each = q * group.leads / len(remaining)
        for d in remaining:
            yield d - waited, each, value  # > 0: days from as_of to the expected conversion


def expected_by(
    *,
    leads: Sequence[OpenLeads],
    history: History,
    as_of: dt.datetime,
    until: dt.datetime,
    since: dt.datetime | None = None,
) -> Amounts:
    """Expected customers and revenue of the conversions in [``since``, ``until``) (``since``
    default ``as_of``) — what the weeks of ``forecast`` hold, cut at any time (nothing when
    ``until`` is not later)."""

    def ahead(moment: dt.datetime) -> Fraction:
        return days(int((moment - as_of) / dt.timedelta(milliseconds=1)))

    first, horizon = ahead(since or as_of), ahead(until)
    tally = _Tally()
    for days_ahead, customers, value in _arrivals(leads, history, as_of):
        if days_ahead is not None and first <= days_ahead < horizon:
            tally.add(customers, value)
    return tally.amounts()


def forecast(
    *,
    leads: Sequence[OpenLeads],
    history: History,
    as_of: dt.datetime,
    weeks: int = DEFAULT_WEEKS,
) -> Forecast:
    """Expected customers and revenue in each of ``weeks`` weeks after ``as_of`` (see the
    module docstring for the method)."""
    if not 1 <= weeks <= MAX_WEEKS:
        raise ValueError(f"weeks: must be between 1 and {MAX_WEEKS}")
    buckets = [_Tally() for _ in range(weeks)]
    later = _Tally()
    for ahead, customers, value in _arrivals(leads, history, as_of):
        week = weeks if ahead is None else int(ahead // _WEEK)
        (buckets[week] if week < weeks else later).add(customers, value)
    total = _Tally()
    for tally in buckets:
        total.customers += tally.customers
        total.revenue = (
            None
            if tally.revenue is None or total.revenue is None
            else total.revenue + tally.revenue
        )
    step = dt.timedelta(weeks=1)
    return Forecast(
        weeks=[
            Week(
                week=k + 1, start=as_of + k * step, end=as_of + (k + 1) * step, expected=t.amounts()
            )
            for k, t in enumerate(buckets)
        ],
        totals=total.amounts(),
        later=later.amounts(),
        open_leads=sum(g.leads for g in leads),
        rates=_rates(leads, history),
    )


def _rates(leads: Sequence[OpenLeads], history: History) -> list[StageRate]:
    reached = history.reached
    out = []
    for rank, stage in enumerate(OPEN_STAGES):
        measured = list(history.days_to_customer.get(stage, ()))
        to_next = _ratio(reached[rank + 1], reached[rank])
        to_customer = _ratio(reached[CUSTOMER], reached[rank])
        out.append(
            StageRate(
                stage=stage,
                open_leads=sum(g.leads for g in leads if g.stage == stage),
                reached=reached[rank],
                to_next=None if to_next is None else _round(to_next, 6),
                to_customer=None if to_customer is None else _round(to_customer, 6),
                median_days_to_customer=(
                    _round(Fraction(statistics.median(measured)), 2) if measured else None
                ),
                timed_customers=len(measured),
            )
        )
    return out
