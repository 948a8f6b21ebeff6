"""RFM segmentation — pure, no I/O: each customer's recency, frequency and monetary value over a
window of sales, a quintile score 1–5 for each, and a segment named from the scores.

* **recency**: whole days from the customer's last sale (its UTC date) to ``as_of``; 0 = bought
  on the day. **frequency**: distinct orders. **monetary**: revenue in the reporting currency.
* **Scores** (5 = best: most recent, most frequent, highest spend). Customers are ordered from
  worst to best on one measure; a customer's score is ``1 + floor(5 × worse / n)``, where
  ``worse`` is the number of customers strictly worse on that measure and ``n`` the number
  scored. Ties therefore share one score (the one of the tie's lowest position, as SQL
  ``RANK()`` does), whatever the order customers come in; with fewer than five customers some
  scores go unused.
* **Segments**: the first row of ``SEGMENT_RULES`` whose conditions hold names the customer
  (every (R, F) pair matches one row; M only splits champions from loyal).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

SCORES: tuple[int, ...] = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class SegmentRule:
    """A segment and the score ranges (inclusive) a customer must fall in."""

    segment: str
    description: str
    r: tuple[int, int] = (1, 5)
    f: tuple[int, int] = (1, 5)
    m: tuple[int, int] = (1, 5)

    def holds(self, r: int, f: int, m: int) -> bool:
        """Whether scores (r, f, m) fall in the rule's ranges."""
        return all(lo <= s <= hi for s, (lo, hi) in ((r, self.r), (f, self.f), (m, self.m)))


SEGMENT_RULES: tuple[SegmentRule, ...] = (
    SegmentRule(
        "champions", "bought recently, buy often and spend the most", (4, 5), (4, 5), (4, 5)
    ),
    SegmentRule("loyal", "buy often, not long ago", r=(3, 5), f=(4, 5)),
    SegmentRule("new", "first order, recently", r=(4, 5), f=(1, 1)),
    SegmentRule("promising", "recent, a few orders", r=(4, 5), f=(2, 3)),
    SegmentRule("at_risk", "used to buy often, not for a while", r=(1, 2), f=(3, 5)),
    SegmentRule("hibernating", "few orders, long ago", r=(1, 2), f=(1, 2)),
    SegmentRule("need_attention", "middling recency, few orders", r=(3, 3), f=(1, 3)),
)
"""Segment table, first match wins (R, F, M ranges inclusive; unspecified = any)."""

SEGMENTS: tuple[str, ...] = tuple(rule.segment for rule in SEGMENT_RULES)
"""The segment names, in table order: ``shared.segments.RFM_SEGMENTS``, which other services
check a campaign's ``rfm:<name>`` target against (a test holds the two equal)."""


@dataclass(frozen=True)
class CustomerSales:
    """One customer's sales over the window, amounts in the reporting currency."""

    customer_id: str
    last_sale_at: dt.datetime
    orders: int
    revenue: Decimal


@dataclass(frozen=True)
class CustomerRfm:
    """A customer's RFM values, scores and segment."""

    customer_id: str
    recency_days: int
    frequency: int
    monetary: Decimal
    r_score: int
    f_score: int
    m_score: int
    segment: str


def quintile_scores(
    values: Mapping[str, Decimal | int], *, higher_is_better: bool
) -> dict[str, int]:
    """Key → score 1–5 by quintile of its value (5 = best); ties share the lower position's."""
    return dict(zip(values, _quintiles(list(values.values()), higher_is_better), strict=True))


def _quintiles(values: Sequence[Decimal | int], higher_is_better: bool) -> list[int]:
    n = len(values)
    # worse(v) = how many values are strictly worse than v; sorted worst first
    ordered = sorted(values, reverse=not higher_is_better)
    first_at: dict[Decimal | int, int] = {}
    for position, value in enumerate(ordered):
        first_at.setdefault(value, position)
    return [1 + (5 * first_at[value]) // n for value in values]


@functools.cache  # 125 score triples; matching the table per customer cost ~1 s per 100 k
def segment_of(r: int, f: int, m: int) -> str:
    """The segment the scores fall in (``SEGMENT_RULES``, first match)."""
    for rule in SEGMENT_RULES:
        if rule.holds(r, f, m):
            return rule.segment
    raise ValueError(f"no segment for scores ({r}, {f}, {m})")  # the table covers every pair


def score(customers: Iterable[CustomerSales], *, as_of: dt.date) -> list[CustomerRfm]:
    """The RFM of every customer, ordered by customer_id."""
    # columns by position, not dicts by id: scoring runs once per bucket of a sizes request
    mine = sorted(customers, key=lambda c: c.customer_id)
    recency = [(as_of - c.last_sale_at.astimezone(dt.UTC).date()).days for c in mine]
    frequency = [c.orders for c in mine]
    monetary = [c.revenue for c in mine]
    r = _quintiles(recency, higher_is_better=False)
    f = _quintiles(frequency, higher_is_better=True)
    m = _quintiles(monetary, higher_is_better=True)
    return [
        CustomerRfm(c.customer_id, days, orders, revenue, rs, fs, ms, segment_of(rs, fs, ms))
        for c, days, orders, revenue, rs, fs, ms in zip(
            mine, recency, frequency, monetary, r, f, m, strict=True
        )
    ]


def distribution(
    scored: Sequence[CustomerRfm], of: Callable[[CustomerRfm], int | str], keys: Sequence[int | str]
) -> dict[str, int]:
    """How many customers have each key (every key listed, zero included)."""
    counts = {str(key): 0 for key in keys}
    for customer in scored:
        counts[str(of(customer))] += 1
    return counts


def summary(scored: Sequence[CustomerRfm]) -> dict[str, dict[str, int]]:
    """Segment sizes and the distribution of each score."""
    return {
        "segments": distribution(scored, lambda c: c.segment, SEGMENTS),
        "r_scores": distribution(scored, lambda c: c.r_score, SCORES),
        "f_scores": distribution(scored, lambda c: c.f_score, SCORES),
        "m_scores": distribution(scored, lambda c: c.m_score, SCORES),
    }
