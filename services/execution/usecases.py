"""Execution's use cases, each inside the caller's unit of work: load → decide → record → emit.

Event handlers, the HTTP API and the scheduler all go through these functions, so a task
tracker's ``done`` and a manager's ``POST .../status`` run the very same code.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Generic, TypeVar, cast

import structlog
from sqlalchemy.orm import Session

from services.execution import domain, store
from shared.events import EventData
from shared.events.ingest import SpendRecorded, TaskStatusChanged
from shared.events.planning import (
    BudgetAllocated,
    BudgetReallocated,
    CampaignPlanned,
    CampaignState,
    CampaignStatusChanged,
    CampaignUpdated,
    PlanCreated,
    StageScheduled,
)
from shared.money import CurrencyNotConvertible, FxRates

log = structlog.get_logger(__name__)

D = TypeVar("D", bound=EventData)


class UnknownStage(LookupError):
    """No scheduled stage has this id."""


class UnknownCampaign(LookupError):
    """No campaign known from planning has this id."""


@dataclass(frozen=True)
class Inputs:
    """What every event use case receives besides its session and payload."""

    event_id: uuid.UUID
    occurred_at: dt.datetime
    now: dt.datetime
    fx: FxRates


# --- projection of planning -----------------------------------------------------------------


def apply_plan_created(*, session: Session, data: PlanCreated, inputs: Inputs) -> int:
    """Record a plan (its currency is the fallback currency of its campaigns)."""
    store.upsert_plan(
        session=session,
        plan_id=data.plan_id,
        name=data.name,
        currency=data.currency,
        period_start=data.period_start,
        period_end=data.period_end,
    )
    return 0


def apply_campaign_state(*, session: Session, data: CampaignState, inputs: Inputs) -> int:
    """Upsert a campaign from its full state if the version is newer; re-evaluate its budget."""
    campaign = store.lock_campaign(session=session, campaign_id=data.campaign_id)
    if domain.is_newer(incoming=data.version, current=campaign.version):
        campaign.plan_id = data.plan_id
        campaign.name, campaign.channel, campaign.owner = data.name, data.channel, data.owner
        campaign.start_date, campaign.end_date = data.start_date, data.end_date
        campaign.version = data.version
        if data.version >= campaign.status_version:
            campaign.status, campaign.status_version = data.status, data.version
        _set_budget(campaign, amount=data.budget, currency=data.currency, at=inputs.occurred_at)
    return _evaluate_budget(session=session, campaign=campaign, inputs=inputs)


def apply_campaign_status(*, session: Session, data: CampaignStatusChanged, inputs: Inputs) -> int:
    """Record a campaign's new status if its version is newer."""
    campaign = store.lock_campaign(session=session, campaign_id=data.campaign_id)
    campaign.plan_id = campaign.plan_id or data.plan_id
    if domain.is_newer(incoming=data.version, current=campaign.status_version):
        campaign.status, campaign.status_version = data.status, data.version
    return _evaluate_budget(session=session, campaign=campaign, inputs=inputs)


def apply_budget_allocated(*, session: Session, data: BudgetAllocated, inputs: Inputs) -> int:
    """Set a campaign's budget (the newest allocation wins) and re-evaluate its alerts."""
    campaign = store.lock_campaign(session=session, campaign_id=data.campaign_id)
    campaign.plan_id = campaign.plan_id or data.plan_id
    _set_budget(campaign, amount=data.amount, currency=data.currency, at=inputs.occurred_at)
    return _evaluate_budget(session=session, campaign=campaign, inputs=inputs)


def apply_budget_reallocated(*, session: Session, data: BudgetReallocated, inputs: Inputs) -> int:
    """Set both campaigns' new budgets (the giving one's only, when the money went back to a
    budget line) and re-evaluate the alerts of each."""
    budgets = {data.from_campaign_id: data.from_budget}
    if data.to_campaign_id is not None and data.to_budget is not None:
        budgets[data.to_campaign_id] = data.to_budget
    queued = 0
    for campaign_id in sorted(budgets):  # a fixed lock order keeps two reallocations deadlock-free
        campaign = store.lock_campaign(session=session, campaign_id=campaign_id)
        campaign.plan_id = campaign.plan_id or data.plan_id
        _set_budget(
            campaign, amount=budgets[campaign_id], currency=data.currency, at=inputs.occurred_at
        )
        queued += _evaluate_budget(session=session, campaign=campaign, inputs=inputs)
    return queued


def apply_stage_scheduled(*, session: Session, data: StageScheduled, inputs: Inputs) -> int:
    """Upsert a stage's schedule if the version is newer (a new deadline re-arms reminders)."""
    stage = store.lock_stage(session=session, stage_id=data.stage_id) or store.new_stage(
        session=session, stage_id=data.stage_id, campaign_id=data.campaign_id
    )
    if domain.is_newer(incoming=data.version, current=stage.version):
        stage.campaign_id, stage.name = data.campaign_id, data.name
        stage.deadline, stage.starts_at = data.deadline, data.starts_at
        stage.assignee, stage.version = data.assignee, data.version
        stage.updated_at = inputs.now
    # a stage reported done before it was scheduled is announced now
    completed = domain.completion_event(snapshot_of(stage))
    if completed is None:
        return 0
    stage.completion_announced = True
    return store.emit(session=session, events=[completed], occurred_at=inputs.now)


def _set_budget(
    campaign: store.Campaign, *, amount: Decimal, currency: str, at: dt.datetime
) -> None:
    # budget.reallocated carries no version, so budget values are ordered by when planning
    # produced them (its occurred_at), whichever event type carried them
    if domain.is_not_older(incoming=at, current=campaign.budget_as_of):
        campaign.budget, campaign.currency, campaign.budget_as_of = amount, currency, at


# --- spend ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Incoming(Generic[D]):
    """A consumed event: its envelope's id and time, and its payload."""

    event_id: uuid.UUID
    occurred_at: dt.datetime
    data: D


@dataclass(frozen=True)
class SpendOutcome:
    """What applying spend did: events queued, and the spends rejected (index → reason)."""

    queued: int
    rejected: dict[int, str]


def record_spends(
    *,
    session: Session,
    spends: Sequence[Incoming[SpendRecorded]],
    now: dt.datetime,
    fx: FxRates,
) -> SpendOutcome:
    """Apply many spend events at once: each campaign is locked and read once, its totals
    updated once and its budget alerts evaluated once, over its spends in order.

    Events recorded before, and repeats of an event within ``spends``, count once: a spend row,
    unique on its event_id and written in this transaction, is the event's processed record.
    A spend whose currency cannot be converted to its campaign's is rejected (by index, with
    the reason) and not recorded, so it can be replayed once a rate is configured.
    """
    seen = store.spends_recorded(session=session, event_ids=(s.event_id for s in spends))
    fresh: dict[uuid.UUID, int] = {}
    for index, spend in enumerate(spends):
        if spend.event_id not in seen and spend.event_id not in fresh:
            fresh[spend.event_id] = index
    if len(fresh) < len(spends):
        log.info("duplicates_skipped", count=len(spends) - len(fresh))
    campaigns = store.lock_campaigns(
        session=session, campaign_ids=(spends[i].data.campaign_id for i in fresh.values())
    )
    plan_currency = store.plan_currencies(
        session=session, plan_ids=(c.plan_id for c in campaigns.values() if c.currency is None)
    )
    accepted: list[Incoming[SpendRecorded]] = []
    rejected: dict[int, str] = {}
    for index in fresh.values():
        spend = spends[index]
        campaign = campaigns[spend.data.campaign_id]
        currency = campaign.currency or plan_currency.get(campaign.plan_id or "")
        try:
            domain.check_spend_currency(
                currency=spend.data.currency, campaign_currency=currency, fx=fx
            )
        except CurrencyNotConvertible as exc:
            rejected[index] = str(exc)
            continue
        accepted.append(spend)
    by_campaign: dict[str, list[tuple[str, Decimal]]] = {}
    for spend in accepted:
        by_campaign.setdefault(spend.data.campaign_id, []).append(
            (spend.data.currency, spend.data.amount)
        )
    evaluated = [  # thresholds are evaluated once the budget is known
        (campaigns[campaign_id], budget, currency)
        for campaign_id in by_campaign
        if (budget := campaigns[campaign_id].budget) is not None
        and (currency := campaigns[campaign_id].currency) is not None
    ]
    before = store.spend_totals(session=session, campaign_ids=by_campaign)
    store.add_spends(
        session=session,
        spends=[
            store.SpendRow(
                event_id=s.event_id,
                campaign_id=s.data.campaign_id,
                channel=s.data.channel,
                amount=s.data.amount,
                currency=s.data.currency,
                occurred_at=s.occurred_at,
            )
            for s in accepted
        ],
        totals=before,
    )
    crossings = store.crossings_of(
        session=session, campaign_ids=(c.campaign_id for c, *_ in evaluated)
    )
    queued = 0
    for campaign, budget, currency in evaluated:
        totals = domain.running_totals(
            by_currency=before.get(campaign.campaign_id, {}),
            spends=by_campaign[campaign.campaign_id],
            currency=currency,
            fx=fx,
        )
        queued += _decide(
            session=session,
            campaign=campaign,
            budget=budget,
            currency=currency,
            totals=totals,
            crossed=crossings[campaign.campaign_id],
            now=now,
        )
    return SpendOutcome(queued=queued, rejected=rejected)


def _evaluate_budget(*, session: Session, campaign: store.Campaign, inputs: Inputs) -> int:
    if campaign.budget is None or campaign.currency is None:
        return 0  # thresholds are evaluated once the budget is known
    spend = domain.total_spend(
        by_currency=store.spend_by_currency(session=session, campaign_id=campaign.campaign_id),
        currency=campaign.currency,
        fx=inputs.fx,
    )
    return _decide(
        session=session,
        campaign=campaign,
        budget=campaign.budget,
        currency=campaign.currency,
        totals=[spend.total],
        crossed=store.crossings(session=session, campaign_id=campaign.campaign_id),
        now=inputs.now,
    )


def _decide(
    *,
    session: Session,
    campaign: store.Campaign,
    budget: Decimal,
    currency: str,
    totals: Sequence[Decimal],
    crossed: tuple[frozenset[int], dict[int, int]],
    now: dt.datetime,
) -> int:
    """Evaluate a campaign's budget (``budget`` in ``currency``) after each of ``totals``, its
    spend after each event in order, and record the decision."""
    decision = domain.evaluate_spend(
        position=domain.BudgetPosition(
            campaign_id=campaign.campaign_id,
            budget=budget,
            currency=currency,
            spend=totals[-1],
            start_date=campaign.start_date,
            end_date=campaign.end_date,
            crossed=crossed[0],
            crossings=crossed[1],
            overspend_flagged=campaign.overspend_flagged,
            overspend_alerts=campaign.overspend_alerts,
        ),
        totals=totals,
        now=now,
    )
    if decision.crossings or decision.rearmed:
        store.record_crossings(
            session=session,
            campaign_id=campaign.campaign_id,
            crossings=decision.crossings,
            rearmed=decision.rearmed,
            budget=budget,
            at=now,
        )
    campaign.overspend_flagged = decision.overspend_flagged
    campaign.overspend_alerts = decision.overspend_alerts
    campaign.updated_at = now
    return store.emit(session=session, events=decision.events, occurred_at=now)


def reevaluate_budget(*, session: Session, campaign_id: str, now: dt.datetime, fx: FxRates) -> int:
    """Re-evaluate a campaign's budget alerts at ``now`` (the forecast moves with time)."""
    campaign = store.lock_campaign(session=session, campaign_id=campaign_id)
    inputs = Inputs(event_id=uuid.UUID(int=0), occurred_at=now, now=now, fx=fx)
    return _evaluate_budget(session=session, campaign=campaign, inputs=inputs)


# --- stages ---------------------------------------------------------------------------------


def snapshot_of(stage: store.Stage) -> domain.StageSnapshot:
    """The domain's view of a stage row."""
    return domain.StageSnapshot(
        stage_id=stage.stage_id,
        campaign_id=stage.campaign_id,
        name=stage.name,
        deadline=stage.deadline,
        assignee=stage.assignee,
        status=stage.status,
        status_as_of=stage.status_as_of,
        completed_at=stage.completed_at,
        completion_announced=stage.completion_announced,
        warned_for=stage.warned_for,
        overdue_for=stage.overdue_for,
    )


def _change_status(
    *,
    session: Session,
    stage: store.Stage,
    status: str,
    at: dt.datetime,
    by: str | None,
    comment: str | None,
    now: dt.datetime,
) -> int:
    decision = domain.change_stage_status(stage=snapshot_of(stage), status=status, at=at)
    if not decision.applies:
        return 0
    stage.status, stage.status_as_of = status, at
    stage.status_by, stage.status_comment = by, comment
    stage.completed_at = decision.completed_at
    stage.completion_announced = decision.completion_announced
    stage.updated_at = now
    return store.emit(session=session, events=decision.events, occurred_at=now)


def apply_task_status(*, session: Session, data: TaskStatusChanged, inputs: Inputs) -> int:
    """Apply a task tracker's status (kept until the stage is scheduled if it is unknown)."""
    stage = store.lock_stage(session=session, stage_id=data.stage_id) or store.new_stage(
        session=session, stage_id=data.stage_id, campaign_id=data.campaign_id
    )
    return _change_status(
        session=session,
        stage=stage,
        status=data.status,
        at=inputs.occurred_at,
        by=data.assignee,
        comment=data.comment,
        now=inputs.now,
    )


def set_stage_status(
    *,
    session: Session,
    stage_id: str,
    status: str,
    comment: str | None,
    role: str,
    subject: str,
    now: dt.datetime,
) -> store.Stage:
    """Change a stage's status on behalf of a caller (an executor only on its own stages).

    Raises ``UnknownStage`` or ``domain.NotAllowed``.
    """
    stage = store.lock_stage(session=session, stage_id=stage_id)
    if stage is None or stage.version == 0:
        raise UnknownStage(stage_id)
    domain.ensure_may_change_stage(role=role, subject=subject, stage=snapshot_of(stage))
    _change_status(
        session=session, stage=stage, status=status, at=now, by=subject, comment=comment, now=now
    )
    return stage


def check_deadlines(*, session: Session, now: dt.datetime, window: dt.timedelta) -> int:
    """Remind of approaching deadlines and flag overdue stages (once per deadline)."""
    stages = store.open_stages_due(session=session, before=now + window)
    statuses = store.campaign_statuses(
        session=session, campaign_ids=(stage.campaign_id for stage in stages)
    )
    queued = 0
    for stage in stages:
        decision = domain.check_deadline(
            stage=snapshot_of(stage),
            campaign_status=statuses.get(stage.campaign_id),
            now=now,
            window=window,
        )
        if decision.events:
            stage.warned_for, stage.overdue_for = decision.warned_for, decision.overdue_for
            queued += store.emit(session=session, events=decision.events, occurred_at=now)
    return queued


# --- a batch of incoming events -------------------------------------------------------------


UseCase = Callable[..., int]

USE_CASES: dict[type[EventData], UseCase] = {
    PlanCreated: apply_plan_created,
    CampaignPlanned: apply_campaign_state,
    CampaignUpdated: apply_campaign_state,
    CampaignStatusChanged: apply_campaign_status,
    StageScheduled: apply_stage_scheduled,
    BudgetAllocated: apply_budget_allocated,
    BudgetReallocated: apply_budget_reallocated,
    TaskStatusChanged: apply_task_status,
}
"""The use case of each event type execution consumes, spend aside (applied in runs); the
other planning events are not its concern."""


def apply_event(
    *, session: Session, event: Incoming[EventData], now: dt.datetime, fx: FxRates
) -> int:
    """Apply one event once (its id claimed in this transaction); events queued."""
    use_case = USE_CASES.get(type(event.data))
    if use_case is None:
        return 0
    if not store.claim(session=session, event_id=event.event_id):
        log.info("duplicate_skipped", event_id=str(event.event_id))
        return 0
    inputs = Inputs(event_id=event.event_id, occurred_at=event.occurred_at, now=now, fx=fx)
    return use_case(session=session, data=event.data, inputs=inputs)


def apply_events(
    *, session: Session, events: Sequence[Incoming[EventData]], now: dt.datetime, fx: FxRates
) -> SpendOutcome:
    """Apply a batch in order, each consecutive run of spend at once (``record_spends``).

    Other events end a run: spend before a campaign's planning event is applied before it,
    spend after it sees its effect, as when events are applied one by one."""
    queued = 0
    rejected: dict[int, str] = {}
    run: list[tuple[int, Incoming[SpendRecorded]]] = []

    def flush() -> None:
        nonlocal queued
        outcome = record_spends(session=session, spends=[s for _, s in run], now=now, fx=fx)
        queued += outcome.queued
        rejected.update((run[i][0], reason) for i, reason in outcome.rejected.items())
        run.clear()

    for index, event in enumerate(events):
        if isinstance(event.data, SpendRecorded):
            run.append((index, cast(Incoming[SpendRecorded], event)))
            continue
        if run:
            flush()
        queued += apply_event(session=session, event=event, now=now, fx=fx)
    if run:
        flush()
    return SpendOutcome(queued=queued, rejected=rejected)


# --- read side ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageProgress:
    """A stage as the progress view shows it."""

    stage_id: str
    name: str | None
    status: str
    deadline: dt.datetime | None
    starts_at: dt.datetime | None
    assignee: str | None
    overdue: bool
    completed_at: dt.datetime | None
    status_as_of: dt.datetime | None
    status_by: str | None
    status_comment: str | None


@dataclass(frozen=True)
class CampaignProgress:
    """A campaign's execution: spend against plan and its stages."""

    campaign_id: str
    plan_id: str | None
    name: str | None
    channel: str | None
    owner: str | None
    status: str | None
    start_date: dt.date | None
    end_date: dt.date | None
    currency: str | None
    budget: Decimal | None
    spend: Decimal
    unconverted_spend: dict[str, Decimal]
    utilisation: Decimal | None
    burn_rate_per_day: Decimal | None
    elapsed_share: Decimal | None
    forecast_at_completion: Decimal | None
    overspend_forecast: bool
    thresholds_crossed: list[int]
    stages: list[StageProgress]
    as_of: dt.datetime


def stage_progress(stage: store.Stage, *, now: dt.datetime) -> StageProgress:
    """The progress view of one stage."""
    return StageProgress(
        stage_id=stage.stage_id,
        name=stage.name,
        status=stage.status,
        deadline=stage.deadline,
        starts_at=stage.starts_at,
        assignee=stage.assignee,
        overdue=domain.is_overdue(status=stage.status, deadline=stage.deadline, now=now),
        completed_at=stage.completed_at,
        status_as_of=stage.status_as_of,
        status_by=stage.status_by,
        status_comment=stage.status_comment,
    )


def campaign_progress(
    *,
    session: Session,
    campaign_id: str,
    now: dt.datetime,
    fx: FxRates,
    with_stages: bool = True,
) -> CampaignProgress:
    """Spend against plan (burn rate, forecast, thresholds) and stages of a campaign."""
    campaign = store.get_campaign(session=session, campaign_id=campaign_id)
    if campaign is None:
        raise UnknownCampaign(campaign_id)
    return _progress(session=session, campaign=campaign, now=now, fx=fx, with_stages=with_stages)


def list_progress(
    *,
    session: Session,
    plan_id: str | None,
    status: str | None,
    limit: int,
    offset: int,
    now: dt.datetime,
    fx: FxRates,
) -> list[CampaignProgress]:
    """A page of campaigns with their spend figures (stages left out)."""
    campaigns = store.list_campaigns(
        session=session, plan_id=plan_id, status=status, limit=limit, offset=offset
    )
    return [
        _progress(session=session, campaign=campaign, now=now, fx=fx, with_stages=False)
        for campaign in campaigns
    ]


def _progress(
    *,
    session: Session,
    campaign: store.Campaign,
    now: dt.datetime,
    fx: FxRates,
    with_stages: bool,
) -> CampaignProgress:
    currency = campaign.currency or store.plan_currency(session=session, plan_id=campaign.plan_id)
    by_currency = store.spend_by_currency(session=session, campaign_id=campaign.campaign_id)
    spend = domain.total_spend(by_currency=by_currency, currency=currency or fx.base, fx=fx)
    budget = campaign.budget
    forecast = burn = share = None
    start, end = campaign.start_date, campaign.end_date
    if start is not None and end is not None:
        forecast = domain.forecast_at_completion(
            spend=spend.total, start_date=start, end_date=end, now=now
        )
        burn = domain.burn_rate_per_day(spend=spend.total, start_date=start, end_date=end, now=now)
        share = domain.elapsed_share(start_date=start, end_date=end, now=now).quantize(
            Decimal("0.0001")
        )
    crossed, _counts = store.crossings(session=session, campaign_id=campaign.campaign_id)
    stages = (
        store.stages_of(session=session, campaign_id=campaign.campaign_id) if with_stages else []
    )
    return CampaignProgress(
        campaign_id=campaign.campaign_id,
        plan_id=campaign.plan_id,
        name=campaign.name,
        channel=campaign.channel,
        owner=campaign.owner,
        status=campaign.status,
        start_date=campaign.start_date,
        end_date=campaign.end_date,
        currency=currency,
        budget=budget,
        spend=spend.total,
        unconverted_spend=dict(spend.unconverted),
        utilisation=None
        if budget is None
        else domain.utilisation(spend=spend.total, budget=budget),
        burn_rate_per_day=burn,
        elapsed_share=share,
        forecast_at_completion=forecast,
        overspend_forecast=forecast is not None and budget is not None and forecast > budget,
        thresholds_crossed=sorted(crossed),
        stages=[stage_progress(stage, now=now) for stage in stages],
        as_of=now,
    )
