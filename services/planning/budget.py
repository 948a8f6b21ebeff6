"""A plan's budget, free of I/O: the plan's cap, budget lines nested under it and phased by
month, the checks that keep every node within its parent, and the roll-up the budget view shows.

A node's money is taken by its sub-lines (their amounts) and by the campaigns drawing from it
(their budgets; a cancelled or rejected campaign takes nothing). The plan itself is the root
node: its cap holds the top-level lines and the campaigns that draw from no line. A plan
without a cap is not limited; its lines and campaigns still are.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_DOWN, Decimal, localcontext

from shared.errors import DomainError
from shared.events.planning import BudgetLineSet
from shared.money import CENT

ZERO = Decimal("0.00")
RELEASED = frozenset({"cancelled", "rejected"})
"""Campaign statuses whose budget no longer takes anything from their line."""
COMMITTED = frozenset({"approved", "active", "paused", "completed"})
"""Campaign statuses whose budget counts as committed."""
ATTRIBUTES = ("brand", "channel", "region", "partner")


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


def check_months(months: Mapping[str, Decimal], *, amount: Decimal, period: Period) -> None:
    """Explicit phasing: months of the plan period, none negative, adding up to ``amount``."""
    allowed = set(months_between(period.start, period.end))
    for key, value in months.items():
        if key not in allowed:
            raise DomainError(
                f"month {key!r} is outside the plan period {period.start}..{period.end}",
                field="months",
                status_code=422,
            )
        if value < 0:
            raise DomainError(
                f"month {key!r} must not be negative", field="months", status_code=422
            )
    total = sum(months.values(), ZERO)
    if total != amount:
        raise DomainError(
            f"the months add up to {total}, not the line's amount {amount}",
            field="months",
            status_code=422,
            context={"months_total": str(total), "amount": str(amount)},
        )


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


def _room(budget: Budget, node: str | None, amount: Decimal, *, field_name: str) -> None:
    available = budget.available(node)
    if available is not None and amount > available:
        raise DomainError(
            f"{amount} exceeds what {budget.name_of(node)} has left: {max(available, ZERO)}"
            " available",
            field=field_name,
            status_code=422,
            context={"available": str(max(available, ZERO))},
        )


def check_line(budget: Budget, line: LineFacts) -> None:
    """A new or changed line: its parent is a line of the plan (and not beneath it), its
    phasing is valid, it holds what is already beneath it, and its parent has room for it."""
    others = budget.without_line(line.line_id)
    if line.parent_id is not None:
        if line.parent_id not in others.lines:
            raise DomainError(
                f"no budget line {line.parent_id!r} in this plan",
                field="parent_id",
                status_code=422,
            )
        if line.line_id in budget.lines and line.parent_id in budget.subtree(line.line_id):
            raise DomainError(
                "a line cannot move under itself or one of its sub-lines",
                field="parent_id",
                status_code=422,
            )
    if line.amount < 0:
        raise DomainError("must not be negative", field="amount", status_code=422)
    if line.months is not None:
        check_months(line.months, amount=line.amount, period=budget.period)
    beneath = budget.taken(line.line_id) if line.line_id in budget.lines else ZERO
    if line.amount < beneath:
        raise DomainError(
            f"the line's sub-lines and campaigns take {beneath}; it needs at least that",
            field="amount",
            status_code=422,
            context={"taken": str(beneath)},
        )
    _room(others, line.parent_id, line.amount, field_name="amount")


def check_removal(budget: Budget, line_id: str) -> None:
    """Only a line with no sub-lines and no campaigns may be removed."""
    if budget.children(line_id) or budget.draws_of(line_id):
        raise DomainError(
            "the line still has sub-lines or campaigns; move or remove them first",
            field="line_id",
            status_code=409,
        )


def check_draw(budget: Budget, draw: Draw) -> None:
    """A campaign's budget fits what its line (or the plan) has left."""
    if draw.line_id is not None and draw.line_id not in budget.lines:
        raise DomainError(
            f"no budget line {draw.line_id!r} in this plan", field="line_id", status_code=422
        )
    if draw.takes:
        _room(budget.without_draw(draw.campaign_id), draw.line_id, draw.takes, field_name="budget")


def check_cap(budget: Budget, cap: Decimal | None) -> None:
    """A plan's new cap holds its top-level lines and the campaigns drawing from no line."""
    taken = budget.taken(None)
    if cap is not None and cap < taken:
        raise DomainError(
            f"the plan's lines and campaigns take {taken}; the budget needs at least that",
            field="budget",
            status_code=422,
            context={"taken": str(taken)},
        )


def _rephase(line: LineFacts, delta: Decimal, *, period: Period, today: dt.date) -> LineFacts:
    # a line phased by hand keeps its past months; the moved money is spread evenly over the
    # months from the current one to the plan's end (all of them before the plan starts)
    amount = line.amount + delta
    if line.months is None:
        return replace(line, amount=amount, version=line.version + 1)
    months = months_between(period.start, period.end)
    ahead = [month for month in months if month >= month_of(today)] or months[-1:]
    sign = Decimal(1) if delta >= 0 else Decimal(-1)
    parts = phase_evenly(abs(delta), ahead)
    phased = {month: line.months.get(month, ZERO) for month in months}
    for month, part in parts.items():
        phased[month] += sign * part
    if any(value < 0 for value in phased.values()):
        raise DomainError(
            f"line {line.name!r} has not that much phased in the months ahead",
            field="amount",
            status_code=422,
        )
    return replace(line, amount=amount, months=phased, version=line.version + 1)


def move_between_lines(
    budget: Budget,
    *,
    source_id: str,
    destination_id: str,
    amount: Decimal,
    actual: Mapping[str, Decimal],
    today: dt.date,
) -> tuple[LineFacts, LineFacts]:
    """Move ``amount`` from one line to another: no more than the source's unspent and
    unallocated money (its amount less the larger of what its sub-lines and campaigns take and
    what they spent — ``actual`` by campaign); the destination must still fit its parent."""
    if source_id == destination_id:
        raise DomainError("must differ from from_line_id", field="to_line_id", status_code=422)
    for line_id, field_name in ((source_id, "from_line_id"), (destination_id, "to_line_id")):
        if line_id not in budget.lines:
            raise DomainError(
                f"no budget line {line_id!r} in this plan", field=field_name, status_code=422
            )
    if amount <= 0:
        raise DomainError("must be greater than 0", field="amount", status_code=422)
    source = budget.lines[source_id]
    subtree = set(budget.subtree(source_id))
    spent = sum(
        (actual.get(d.campaign_id, ZERO) for d in budget.draws.values() if d.line_id in subtree),
        ZERO,
    )
    movable = source.amount - max(budget.taken(source_id), spent)
    if amount > movable:
        raise DomainError(
            f"{amount} exceeds what line {source.name!r} can give (unspent and not allocated):"
            f" {max(movable, ZERO)} available",
            field="amount",
            status_code=422,
            context={"available": str(max(movable, ZERO))},
        )
    source_after = _rephase(source, -amount, period=budget.period, today=today)
    reduced = Budget(
        budget.period,
        [source_after if line.line_id == source_id else line for line in budget.lines.values()],
        budget.draws.values(),
    )
    return source_after, move_into_line(reduced, line_id=destination_id, amount=amount, today=today)


def move_into_line(budget: Budget, *, line_id: str, amount: Decimal, today: dt.date) -> LineFacts:
    """The line ``line_id`` grown by ``amount`` that ``budget`` has freed elsewhere (a line or
    a campaign gave it); it must still fit its parent. The moved money is phased over the
    months ahead."""
    if line_id not in budget.lines:
        raise DomainError(
            f"no budget line {line_id!r} in this plan", field="to_line_id", status_code=422
        )
    receiver = budget.lines[line_id]
    grown = _rephase(receiver, amount, period=budget.period, today=today)
    room = budget.without_line(line_id).available(receiver.parent_id)
    if room is not None and grown.amount > room:
        left = max(room - receiver.amount, ZERO)
        raise DomainError(
            f"{amount} exceeds what {budget.name_of(receiver.parent_id)} has left for line"
            f" {receiver.name!r}: {left} available",
            field="amount",
            status_code=422,
            context={"available": str(left)},
        )
    check_line(budget, grown)
    return grown


def check_unspent(*, budget: Decimal, spent: Decimal, amount: Decimal, name: str) -> None:
    """A campaign gives no more than its unspent budget (budget − actual spend)."""
    unspent = budget - spent
    if amount > unspent:
        raise DomainError(
            f"{amount} exceeds the unspent budget of {name} ({budget} budget, {spent} spent):"
            f" {max(unspent, ZERO)} available",
            field="amount",
            status_code=422,
            context={"available": str(max(unspent, ZERO))},
        )


def line_event(line: LineFacts, *, currency: str) -> BudgetLineSet:
    """A line's full state as the event that announces it."""
    return BudgetLineSet(
        line_id=line.line_id,
        plan_id=line.plan_id,
        parent_id=line.parent_id,
        name=line.name,
        brand=line.brand,
        channel=line.channel,
        region=line.region,
        partner=line.partner,
        amount=line.amount,
        currency=currency,
        months=dict(line.months) if line.months is not None else None,
        version=line.version,
    )


# --- the budget view ------------------------------------------------------------------------


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
