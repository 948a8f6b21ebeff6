"""A plan's budget, free of I/O: the checks that keep every node within its parent (a line
within its parent line or the plan's cap, a campaign within its line), moves between lines, and
a line as the event that announces it.

The tree itself — lines, campaigns' draws, phasing by month and the roll-up the budget view
shows — is ``shared.budget``, which measurement's plan report reads too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal

from shared.budget import (
    ZERO,
    Budget,
    Draw,
    LineFacts,
    Period,
    month_of,
    months_between,
    phase_evenly,
)
from shared.errors import DomainError
from shared.events.planning import BudgetLineSet


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
