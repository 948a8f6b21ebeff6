"""A plan's budget tree, the part planning and measurement share: budget lines nested under
the plan and phased by month, the campaigns drawing from them, and the roll-up of every node —
planned, committed, actual, remaining — in total and by month. One reading for planning's
budget view (``GET /plans/{id}/budget``) and measurement's plan report; free of I/O.

A node's money is taken by its sub-lines (their amounts) and by the campaigns drawing from it
(their budgets; a cancelled or rejected campaign takes nothing). The plan itself is the root
node: its cap holds the top-level lines and the campaigns that draw from no line. A plan
without a cap is not limited; its lines and campaigns still are. Planning's checks on top of
this (what fits where) live in ``services.planning.budget``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, localcontext

from shared.money import CENT

ZERO = Decimal("0.00")
RELEASED = frozenset({"cancelled", "rejected"})
"""Campaign statuses whose budget no longer takes anything from their line."""
COMMITTED = frozenset({"approved", "active", "paused", "completed"})
"""Campaign statuses whose budget counts as committed."""
ATTRIBUTES = ("brand", "channel", "region", "partner")
"""What a line may be about, besides its name."""


@dataclass(frozen=True)
class LineFacts:
    """A budget line: a named node with optional brand, channel, region and partner, an
    amount, and its phasing by month (``months``; None = evenly over the plan period)."""

    line_id: str
    plan_id: str
    name: str
    amount: Decimal
    parent_id: str | None = None
    brand: str | None = None
    channel: str | None = None
    region: str | None = None
    partner: str | None = None
    months: Mapping[str, Decimal] | None = None
    version: int = 1


@dataclass(frozen=True)
class Draw:
    """What a campaign takes from the budget: its line (None = the plan itself), its budget,
    dates and status."""

    campaign_id: str
    line_id: str | None
    budget: Decimal
    start_date: dt.date
    end_date: dt.date
    status: str

    @property
    def takes(self) -> Decimal:
        """The amount this campaign holds of its line."""
        return ZERO if self.status in RELEASED else self.budget


@dataclass(frozen=True)
class Period:
    """The plan's period and cap, as the budget rules need them."""

    start: dt.date
    end: dt.date
    cap: Decimal | None = None


def month_of(day: dt.date | dt.datetime) -> str:
    """The ``YYYY-MM`` key of a day."""
    return f"{day.year:04d}-{day.month:02d}"


def months_between(start: dt.date, end: dt.date) -> list[str]:
    """The ``YYYY-MM`` keys of every month from ``start`` to ``end`` inclusive."""
    months = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def split(amount: Decimal, weights: Mapping[str, int | Decimal]) -> dict[str, Decimal]:
    """``amount`` shared in cents by ``weights`` (none negative); the cents rounding leaves over
    go to the first keys of a positive weight, so the parts always add up to ``amount`` and a
    key weighing nothing gets nothing."""
    total = sum(weights.values(), Decimal(0))
    if total == 0:
        return {key: ZERO for key in weights}
    with localcontext() as exact:
        # 18-digit amounts times weights of up to 18 digits: the default 28 digits would round
        exact.prec = 80
        parts = {
            key: (amount * weight / total).quantize(CENT, rounding=ROUND_DOWN)
            for key, weight in weights.items()
        }
    left = amount - sum(parts.values(), ZERO)
    # fewer cents are left than keys of a positive weight: one pass hands them all out
    for key in (key for key, weight in weights.items() if weight > 0):
        if left <= 0:
            break
        parts[key] += CENT
        left -= CENT
    return parts


def phase_evenly(amount: Decimal, months: Sequence[str]) -> dict[str, Decimal]:
    """``amount`` in equal monthly parts (cents left over go to the first months)."""
    return split(amount, dict.fromkeys(months, 1))


def phase_by_days(amount: Decimal, start: dt.date, end: dt.date) -> dict[str, Decimal]:
    """``amount`` over the months of [start, end] in proportion to the days in each."""
    days: dict[str, int] = {}
    day = start
    while day <= end:
        key = month_of(day)
        days[key] = days.get(key, 0) + 1
        day += dt.timedelta(days=1)
    return split(amount, days)


def phasing(line: LineFacts, period: Period) -> dict[str, Decimal]:
    """The line's amount by month: as given, or evenly over the plan period."""
    if line.months is not None:
        return {key: line.months.get(key, ZERO) for key in months_between(period.start, period.end)}
    return phase_evenly(line.amount, months_between(period.start, period.end))


class Budget:
    """A plan's lines and campaign draws, with the sums the checks and the view need."""

    def __init__(self, period: Period, lines: Iterable[LineFacts], draws: Iterable[Draw]) -> None:
        self.period = period
        self.lines = {line.line_id: line for line in lines}
        self.draws = {draw.campaign_id: draw for draw in draws}

    def children(self, line_id: str | None) -> list[LineFacts]:
        """The lines directly under ``line_id`` (None = the plan's top-level lines)."""
        return [line for line in self.lines.values() if line.parent_id == line_id]

    def draws_of(self, line_id: str | None) -> list[Draw]:
        """The campaigns drawing straight from ``line_id`` (None = from the plan)."""
        return [draw for draw in self.draws.values() if draw.line_id == line_id]

    def taken(self, line_id: str | None) -> Decimal:
        """What the node's sub-lines and campaigns take of it."""
        return sum((line.amount for line in self.children(line_id)), ZERO) + sum(
            (draw.takes for draw in self.draws_of(line_id)), ZERO
        )

    def capacity(self, line_id: str | None) -> Decimal | None:
        """The node's amount (the plan's cap for the root; None = no cap)."""
        return self.period.cap if line_id is None else self.lines[line_id].amount

    def available(self, line_id: str | None) -> Decimal | None:
        """What the node has left for new lines and campaigns (None = no limit)."""
        capacity = self.capacity(line_id)
        return None if capacity is None else capacity - self.taken(line_id)

    def name_of(self, line_id: str | None) -> str:
        """How errors name a node."""
        return "the plan's budget" if line_id is None else f"line {self.lines[line_id].name!r}"

    def subtree(self, line_id: str) -> list[str]:
        """``line_id`` and every line beneath it."""
        found, pending = [], [line_id]
        while pending:
            current = pending.pop()
            found.append(current)
            pending.extend(child.line_id for child in self.children(current))
        return found

    def without_line(self, line_id: str) -> Budget:
        """This budget without one line (to check that line's new state against the rest)."""
        return Budget(
            self.period,
            (line for line in self.lines.values() if line.line_id != line_id),
            self.draws.values(),
        )

    def without_draw(self, campaign_id: str) -> Budget:
        """This budget without one campaign (to check its new budget against the rest)."""
        return Budget(
            self.period,
            self.lines.values(),
            (draw for draw in self.draws.values() if draw.campaign_id != campaign_id),
        )


@dataclass
class Figures:
    """Planned, committed (approved campaigns), actual (spend) and remaining, of a node or a
    month; ``available`` is what new lines and campaigns may still take (nodes only)."""

    planned: Decimal | None = ZERO
    committed: Decimal = ZERO
    actual: Decimal = ZERO

    @property
    def remaining(self) -> Decimal | None:
        """Planned money not yet spent."""
        return None if self.planned is None else self.planned - self.actual


@dataclass
class NodeView:
    """A node of the budget tree: totals, the same by month, its campaigns and sub-lines."""

    line: LineFacts | None
    total: Figures
    months: dict[str, Figures]
    taken: Decimal
    available: Decimal | None
    campaign_ids: list[str] = field(default_factory=list)
    children: list[NodeView] = field(default_factory=list)


def budget_view(
    budget: Budget, *, actual: Mapping[str, Mapping[str, Decimal]]
) -> tuple[NodeView, list[str]]:
    """The plan's budget tree (its root is the plan) and the months of the view.

    ``actual`` is spend in the plan's currency by campaign and month. A node's committed and
    actual money are those of the campaigns drawing from it or from a line beneath it; its
    planned money is its amount (the plan's cap at the root), phased by month."""
    months = months_between(budget.period.start, budget.period.end)
    spent_months = {month for by_month in actual.values() for month in by_month}
    months = sorted(set(months) | spent_months)

    def node(line_id: str | None) -> NodeView:
        line = budget.lines.get(line_id) if line_id is not None else None
        children = [node(child.line_id) for child in budget.children(line_id)]
        draws = budget.draws_of(line_id)
        if line is not None:
            planned_months: Mapping[str, Decimal | None] = phasing(line, budget.period)
        elif budget.period.cap is not None:
            planned_months = phase_evenly(
                budget.period.cap, months_between(budget.period.start, budget.period.end)
            )
        else:
            planned_months = {}
        by_month = {
            month: Figures(planned=planned_months.get(month, ZERO) if planned_months else None)
            for month in months
        }
        for draw in draws:
            committed = (
                phase_by_days(draw.budget, draw.start_date, draw.end_date)
                if draw.status in COMMITTED
                else {}
            )
            for month, amount in committed.items():
                by_month.setdefault(month, Figures()).committed += amount
            for month, amount in actual.get(draw.campaign_id, {}).items():
                by_month.setdefault(month, Figures()).actual += amount
        for child in children:
            for month, figures in child.months.items():
                by_month[month].committed += figures.committed
                by_month[month].actual += figures.actual
        capacity = budget.capacity(line_id)
        return NodeView(
            line=line,
            total=Figures(
                planned=capacity,
                committed=sum((f.committed for f in by_month.values()), ZERO),
                actual=sum((f.actual for f in by_month.values()), ZERO),
            ),
            months=by_month,
            taken=budget.taken(line_id),
            available=budget.available(line_id),
            campaign_ids=[draw.campaign_id for draw in draws],
            children=children,
        )

    return node(None), months
