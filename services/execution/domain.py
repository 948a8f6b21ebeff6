"""Execution's business rules, pure: budget thresholds, forecasts, currency, stage statuses.

Nothing here touches a database, a broker or the wall clock: functions take plain values (and
``now``) and return decisions with the events to publish. Outgoing event ids are deterministic
(uuid5 over their cause), so re-running a decision can only produce the same event again, which
the outbox and every consumer ignore.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from shared.events import EventData
from shared.events.execution import (
    BudgetOverspendForecast,
    BudgetThresholdCrossed,
    StageCompleted,
    StageDeadlineApproaching,
    StageOverdue,
)
from shared.money import CurrencyNotConvertible, FxRates
from shared.money import cents as to_money

NAMESPACE = uuid.UUID("6d1b7c52-8f0e-4c4e-9a57-2f6b2b8e0e11")
"""Namespace of the execution service's deterministic event ids."""

THRESHOLDS: tuple[int, ...] = (80, 100)
"""Shares of the budget (in %) whose crossing is announced, once each per arming."""

CLOSED_STAGE_STATUSES = frozenset({"done", "cancelled"})
FINISHED_CAMPAIGN_STATUSES = frozenset({"completed", "cancelled"})
STAGE_EDITORS = frozenset({"admin", "cmo", "manager"})
"""Roles that may change any stage's status; an executor only its own stages."""

MONEY_MAX = Decimal("9999999999999999.99")
"""The largest amount an event's money field holds (18 digits, 2 decimals)."""


class ExecutionError(Exception):
    """Base of the execution domain's errors."""


class NotAllowed(ExecutionError):
    """The caller may not perform this change."""


@dataclass(frozen=True)
class Outgoing:
    """An event to publish, with its deterministic id."""

    event_id: uuid.UUID
    data: EventData


def event_id_for(*cause: object) -> uuid.UUID:
    """A deterministic event id for an event caused by ``cause`` (same cause, same id)."""
    return uuid.uuid5(NAMESPACE, ":".join(str(part) for part in cause))


def is_newer(*, incoming: int, current: int) -> bool:
    """Whether a versioned state should replace the recorded one (strictly newer version)."""
    return incoming > current


def is_not_older(*, incoming: dt.datetime, current: dt.datetime | None) -> bool:
    """Whether a value stamped ``incoming`` should replace one stamped ``current``."""
    return current is None or incoming >= current


# --- currency -------------------------------------------------------------------------------


def check_spend_currency(*, currency: str, campaign_currency: str | None, fx: FxRates) -> None:
    """Raise ``CurrencyNotConvertible`` unless spend in ``currency`` can count for the campaign.

    A campaign not known yet is assumed to be in a currency with a rate: its spend is kept if
    the currency is the base currency or has a rate.
    """
    if campaign_currency is not None:
        fx.convert(Decimal(0), source=currency, target=campaign_currency)
    elif fx.rate(currency) is None:
        raise CurrencyNotConvertible(
            f"no FX rate configured for {currency} (rates are relative to {fx.base})"
        )


@dataclass(frozen=True)
class SpendTotal:
    """A campaign's spend in its currency, and what could not be converted."""

    total: Decimal
    unconverted: Mapping[str, Decimal]


def total_spend(*, by_currency: Mapping[str, Decimal], currency: str, fx: FxRates) -> SpendTotal:
    """Sum per-currency spend into ``currency``; amounts without a rate are set aside."""
    total = Decimal(0)
    unconverted: dict[str, Decimal] = {}
    for source, amount in sorted(by_currency.items()):
        try:
            total += fx.convert(amount, source=source, target=currency)
        except CurrencyNotConvertible:
            unconverted[source] = amount
    return SpendTotal(total=to_money(total), unconverted=unconverted)


# --- budget figures ---------------------------------------------------------------------------


def campaign_period(start_date: dt.date, end_date: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The campaign's run in UTC: from its start date's midnight to the end of its end date."""
    start = dt.datetime.combine(start_date, dt.time(), tzinfo=dt.UTC)
    end = dt.datetime.combine(end_date + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return start, end


def elapsed_share(*, start_date: dt.date, end_date: dt.date, now: dt.datetime) -> Decimal:
    """The share (0..1) of the campaign's duration elapsed at ``now``."""
    start, end = campaign_period(start_date, end_date)
    duration = (end - start).total_seconds()
    elapsed = min(max((now - start).total_seconds(), 0.0), duration)
    return Decimal(str(elapsed)) / Decimal(str(duration)) if duration > 0 else Decimal(1)


def forecast_at_completion(
    *, spend: Decimal, start_date: dt.date, end_date: dt.date, now: dt.datetime
) -> Decimal | None:
    """Spend / elapsed share of the duration (SPEC §4); None before the campaign starts."""
    return _forecast(spend, elapsed_share(start_date=start_date, end_date=end_date, now=now))


def _forecast(spend: Decimal, share: Decimal | None) -> Decimal | None:
    # seconds into a campaign the share is tiny; cap so the figure always fits an event
    return None if share is None or share == 0 else to_money(min(spend / share, MONEY_MAX))


def utilisation(*, spend: Decimal, budget: Decimal) -> Decimal | None:
    """Spend / budget; None for a zero budget."""
    return None if budget == 0 else (spend / budget).quantize(Decimal("0.0001"))


def burn_rate_per_day(
    *, spend: Decimal, start_date: dt.date, end_date: dt.date, now: dt.datetime
) -> Decimal | None:
    """Average spend per elapsed day of the campaign; None before it starts."""
    start, end = campaign_period(start_date, end_date)
    elapsed_days = Decimal(str((min(now, end) - start).total_seconds())) / Decimal(86400)
    return None if elapsed_days <= 0 else to_money(min(spend / elapsed_days, MONEY_MAX))


def threshold_reached(*, spend: Decimal, budget: Decimal, threshold_pct: int) -> bool:
    """Whether ``spend`` reached ``threshold_pct`` % of ``budget`` (no spend reaches nothing)."""
    return spend > 0 and spend * 100 >= budget * threshold_pct


@dataclass(frozen=True)
class BudgetPosition:
    """What is recorded about a campaign's budget, spend and the alerts already sent."""

    campaign_id: str
    budget: Decimal
    currency: str
    spend: Decimal
    start_date: dt.date | None
    end_date: dt.date | None
    crossed: frozenset[int]
    """Thresholds currently crossed (announced and not re-armed)."""
    crossings: Mapping[int, int]
    """How many times each threshold was announced so far."""
    overspend_flagged: bool
    overspend_alerts: int


@dataclass(frozen=True)
class Crossing:
    """A threshold announced by a decision: its generation and the spend that reached it."""

    threshold_pct: int
    generation: int
    spend: Decimal
    rearmed: bool = False
    """Re-armed again later in the same decision (the spend fell back below it)."""


@dataclass(frozen=True)
class BudgetDecision:
    """What to record after evaluating a budget position, and the events to publish."""

    newly_crossed: tuple[int, ...]
    rearmed: tuple[int, ...]
    """Thresholds crossed before the decision and re-armed by it."""
    forecast: Decimal | None
    overspend_flagged: bool
    overspend_alerts: int
    events: tuple[Outgoing, ...]
    crossings: tuple[Crossing, ...] = ()
    """The announcements behind ``newly_crossed``, in order."""


def evaluate_budget(*, position: BudgetPosition, now: dt.datetime) -> BudgetDecision:
    """Announce thresholds newly crossed and a newly forecast overspend; re-arm what recovered.

    A threshold is announced once; it is re-armed only when a raised budget brings the spend
    back below it, so a later crossing is announced again (a new, distinct event).
    """
    return evaluate_spend(position=position, totals=(position.spend,), now=now)


def evaluate_spend(
    *, position: BudgetPosition, totals: Sequence[Decimal], now: dt.datetime
) -> BudgetDecision:
    """``evaluate_budget`` after each of several spend events in order, as one decision.

    ``totals`` are the campaign's spend after each event (``position.spend`` is ignored):
    every threshold and overspend alert is announced once, carrying the spend (and forecast)
    of the event that reached it, exactly as if the events had been evaluated one by one.
    """
    p = position
    share = None
    if p.start_date is not None and p.end_date is not None:
        share = elapsed_share(start_date=p.start_date, end_date=p.end_date, now=now)
    crossed, counts = set(p.crossed), dict(p.crossings)
    open_new: dict[int, int] = {}  # threshold → index in ``crossings`` of its open announcement
    crossings: list[Crossing] = []
    rearmed: list[int] = []
    events: list[Outgoing] = []
    flagged, alerts = p.overspend_flagged, p.overspend_alerts
    forecast: Decimal | None = None
    for spend in totals:
        for pct in THRESHOLDS:
            reached = threshold_reached(spend=spend, budget=p.budget, threshold_pct=pct)
            if reached and pct not in crossed:
                crossed.add(pct)
                counts[pct] = counts.get(pct, 0) + 1
                open_new[pct] = len(crossings)
                crossings.append(Crossing(pct, counts[pct], spend))
                events.append(_threshold_event(p, pct=pct, generation=counts[pct], spend=spend))
            elif not reached and pct in crossed:
                crossed.discard(pct)
                if pct in open_new:
                    crossings[open_new[pct]] = replace(crossings[open_new.pop(pct)], rearmed=True)
                else:
                    rearmed.append(pct)
        forecast = _forecast(spend, share)
        overspend = forecast is not None and forecast > p.budget
        if overspend and not flagged and forecast is not None:
            alerts += 1
            events.append(
                Outgoing(
                    event_id=event_id_for(p.campaign_id, "overspend_forecast", alerts),
                    data=BudgetOverspendForecast(
                        campaign_id=p.campaign_id,
                        spend=spend,
                        budget=p.budget,
                        forecast_at_completion=forecast,
                        currency=p.currency,
                    ),
                )
            )
        flagged = overspend
    return BudgetDecision(
        newly_crossed=tuple(c.threshold_pct for c in crossings),
        rearmed=tuple(rearmed),
        forecast=forecast,
        overspend_flagged=flagged,
        overspend_alerts=alerts,
        events=tuple(events),
        crossings=tuple(crossings),
    )


def _threshold_event(p: BudgetPosition, *, pct: int, generation: int, spend: Decimal) -> Outgoing:
    return Outgoing(
        event_id=event_id_for(p.campaign_id, "threshold", pct, generation),
        data=BudgetThresholdCrossed(
            campaign_id=p.campaign_id,
            threshold_pct=pct,  # type: ignore[arg-type]
            spend=spend,
            budget=p.budget,
            currency=p.currency,
        ),
    )


def running_totals(
    *,
    by_currency: Mapping[str, Decimal],
    spends: Sequence[tuple[str, Decimal]],
    currency: str,
    fx: FxRates,
) -> list[Decimal]:
    """A campaign's spend in ``currency`` (as ``total_spend`` counts it) after each of
    ``spends`` ((currency, amount), in order), starting from ``by_currency``."""
    sums = dict(by_currency)
    converted = {c: _converted(a, source=c, target=currency, fx=fx) for c, a in sums.items()}
    out = []
    for source, amount in spends:
        sums[source] = sums.get(source, Decimal(0)) + amount
        converted[source] = _converted(sums[source], source=source, target=currency, fx=fx)
        out.append(to_money(sum(converted.values(), Decimal(0))))
    return out


def _converted(amount: Decimal, *, source: str, target: str, fx: FxRates) -> Decimal:
    """``amount`` in ``target``; 0 when it cannot be converted (``total_spend`` sets it aside)."""
    try:
        return fx.convert(amount, source=source, target=target)
    except CurrencyNotConvertible:
        return Decimal(0)


# --- stages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageSnapshot:
    """What is recorded about a stage (name and deadline are None until it is scheduled)."""

    stage_id: str
    campaign_id: str
    name: str | None
    deadline: dt.datetime | None
    assignee: str | None
    status: str
    status_as_of: dt.datetime | None
    completed_at: dt.datetime | None
    completion_announced: bool
    warned_for: dt.datetime | None
    overdue_for: dt.datetime | None


def may_change_stage(*, role: str, subject: str, assignee: str | None) -> bool:
    """Managers, the CMO and admins change any stage; an executor only its own; viewers none."""
    if role in STAGE_EDITORS:
        return True
    return role == "executor" and assignee is not None and assignee == subject


def ensure_may_change_stage(*, role: str, subject: str, stage: StageSnapshot) -> None:
    """Raise ``NotAllowed`` unless the caller may change the stage's status."""
    if may_change_stage(role=role, subject=subject, assignee=stage.assignee):
        return
    if role == "executor":
        raise NotAllowed(
            f"an executor may change only its own stages; stage {stage.stage_id!r} is "
            f"assigned to {stage.assignee!r}, not {subject!r}"
        )
    raise NotAllowed(f"role {role!r} may not change stage statuses")


@dataclass(frozen=True)
class StatusDecision:
    """Whether to record a status change, the resulting completion time and events."""

    applies: bool
    completed_at: dt.datetime | None
    completion_announced: bool
    events: tuple[Outgoing, ...]


def completion_event(stage: StageSnapshot) -> Outgoing | None:
    """``stage.completed`` for a done, scheduled stage not announced yet; else None."""
    if (
        stage.status != "done"
        or stage.completion_announced
        or stage.name is None
        or stage.deadline is None
    ):
        return None
    return Outgoing(
        event_id=event_id_for(stage.stage_id, "completed"),
        data=StageCompleted(
            stage_id=stage.stage_id,
            campaign_id=stage.campaign_id,
            name=stage.name,
            deadline=stage.deadline,
            assignee=stage.assignee,
            completed_at=stage.completed_at or stage.status_as_of or stage.deadline,
        ),
    )


def change_stage_status(*, stage: StageSnapshot, status: str, at: dt.datetime) -> StatusDecision:
    """Apply a status reported at ``at`` unless a later one is recorded; ``done`` completes.

    A stage's completion is announced once, even if it is reopened and done again.
    """
    if not is_not_older(incoming=at, current=stage.status_as_of):
        return StatusDecision(False, stage.completed_at, stage.completion_announced, ())
    if status == "done":
        completed_at = stage.completed_at if stage.status == "done" else at
    else:
        completed_at = None
    changed = replace(stage, status=status, status_as_of=at, completed_at=completed_at)
    event = completion_event(changed)
    return StatusDecision(
        applies=True,
        completed_at=completed_at,
        completion_announced=stage.completion_announced or event is not None,
        events=(event,) if event is not None else (),
    )


def is_overdue(*, status: str, deadline: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether an open stage's deadline has passed."""
    return status not in CLOSED_STAGE_STATUSES and deadline is not None and deadline <= now


@dataclass(frozen=True)
class DeadlineDecision:
    """The deadlines reminders were sent for after a check, and the events to publish."""

    warned_for: dt.datetime | None
    overdue_for: dt.datetime | None
    events: tuple[Outgoing, ...]


def check_deadline(
    *,
    stage: StageSnapshot,
    campaign_status: str | None,
    now: dt.datetime,
    window: dt.timedelta,
) -> DeadlineDecision:
    """Remind once per deadline when it is within ``window``; flag once when it has passed.

    A rescheduled stage (new deadline) is re-armed; done or cancelled stages and stages of
    completed or cancelled campaigns are left alone.
    """
    unchanged = DeadlineDecision(stage.warned_for, stage.overdue_for, ())
    if (
        stage.deadline is None
        or stage.name is None
        or stage.status in CLOSED_STAGE_STATUSES
        or campaign_status in FINISHED_CAMPAIGN_STATUSES
    ):
        return unchanged
    common = {
        "stage_id": stage.stage_id,
        "campaign_id": stage.campaign_id,
        "name": stage.name,
        "deadline": stage.deadline,
        "assignee": stage.assignee,
    }
    cause = (stage.stage_id, stage.deadline.isoformat())
    if stage.deadline <= now:
        if stage.overdue_for == stage.deadline:
            return unchanged
        event = Outgoing(event_id=event_id_for(*cause, "overdue"), data=StageOverdue(**common))
        return DeadlineDecision(stage.warned_for, stage.deadline, (event,))
    if stage.deadline - now <= window and stage.warned_for != stage.deadline:
        hours_left = round((stage.deadline - now).total_seconds() / 3600, 2)
        event = Outgoing(
            event_id=event_id_for(*cause, "deadline_approaching"),
            data=StageDeadlineApproaching(**common, hours_left=hours_left),
        )
        return DeadlineDecision(stage.deadline, stage.overdue_for, (event,))
    return unchanged
