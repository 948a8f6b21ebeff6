"""Who hears about what, what they read, and how delivery retries — pure rules, no I/O.

A *cause* is an incoming event that people must hear about (a stage is overdue, a budget
threshold was crossed, a KPI breached its target, a plan was approved …). The rules:

- ``stage.deadline_approaching`` / ``stage.overdue`` / ``stage.completed`` → the stage's assignee
  (from the event, else from the planning directory), falling back to the campaign owner;
- ``budget.threshold_crossed`` / ``budget.overspend_forecast`` / ``kpi.target_breached`` /
  ``kpi.target_recovered`` → the campaign owner;
- ``budget.reallocation_proposed`` (by proposal; one a rule applies is told by planning's
  ``budget.reallocated`` or ``reallocation.apply_failed``), ``budget.reallocated`` by a rule,
  ``reallocation.apply_failed``, ``plan.approved`` and ``campaign.change_requested`` → the
  plan owner (a move made by hand → nobody);
- ``sales_target.at_risk`` / ``sales_target.recovered`` / ``sales_target.proposal_decided`` →
  the owner of the sales unit; ``sales_target.proposed`` → the owner of the unit's parent
  (nobody for the top unit: a CMO or admin decides its figures);
- ``discount.limit_exceeded`` → the campaign owner; ``discount.threshold_crossed`` → the
  campaign owner when the scope is a campaign, else the plan owner;
- ``campaign.status_changed`` to ``rejected`` → the campaign owner (other statuses: nobody);
- ``campaign.change_decided`` → whoever requested the change (remembered from its
  ``campaign.change_requested``), else the campaign owner;
- ``kpi.snapshot`` and every other event → nobody.

The texts of the sales-target, discount and approval causes are in
:mod:`services.notifier.planning_messages`; the directory entries in
:mod:`services.notifier.directory`.

When the recipient is not known yet (the planning event has not arrived: topics are not ordered
with respect to each other) the cause *waits* for that stage, campaign, plan or unit and is notified
as soon as it is known (see :func:`audience_of`). A stage event without an assignee waits for
its ``stage.scheduled`` (execution only reports stages planning scheduled), so the fallback to
the campaign owner applies only to stages known to have no assignee.

Each recipient gets one notification per enabled channel. A recipient that is not registered,
has no channel enabled, or muted the event type still gets a row — status ``skipped`` on the
pseudo-channel ``none`` with the reason in ``last_error`` — so nothing is silently lost and the
delivery log explains why nobody was told. Skipped rows are not re-sent when the recipient
registers later (a week-old reminder is noise); they stay listable.

Delivery retries follow :class:`RetryPolicy`: exponential backoff from ``initial_s`` doubling
per attempt, capped at ``max_s``, for at most ``max_attempts`` attempts; permanent errors
(e.g. an SMTP 5xx, a webhook 4xx) fail at once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, get_args

from services.notifier import planning_messages
from services.notifier.directory import CampaignInfo as CampaignInfo
from services.notifier.directory import ChangeRequestInfo as ChangeRequestInfo
from services.notifier.directory import Directory as Directory
from services.notifier.directory import LineInfo as LineInfo
from services.notifier.directory import Lookups as Lookups
from services.notifier.directory import PlanInfo as PlanInfo
from services.notifier.directory import StageInfo as StageInfo
from services.notifier.directory import UnitInfo as UnitInfo
from services.notifier.directory import WaitKey as WaitKey
from services.notifier.directory import campaign_info as campaign_info
from services.notifier.directory import change_request_info as change_request_info
from services.notifier.directory import line_info as line_info
from services.notifier.directory import lookups_with_plans as lookups_with_plans
from services.notifier.directory import plan_info as plan_info
from services.notifier.directory import stage_info as stage_info
from services.notifier.directory import supersedes as supersedes
from services.notifier.directory import unit_info as unit_info
from services.notifier.wording import (
    campaign_label,
    duration,
    kpi_label,
    money,
    number,
    pct,
    plan_label,
    plan_suffix,
    receiver_label,
    when,
)
from shared.events.discounts import DiscountLimitExceeded, DiscountThresholdCrossed
from shared.events.envelope import EventData
from shared.events.execution import (
    BudgetOverspendForecast,
    BudgetThresholdCrossed,
    StageCompleted,
    StageDeadlineApproaching,
    StageOverdue,
)
from shared.events.kpi import (
    BudgetReallocationProposed,
    KpiTargetBreached,
    KpiTargetRecovered,
    SalesTargetAtRisk,
    SalesTargetRecovered,
)
from shared.events.notifications import NotificationDelivered, NotificationFailed
from shared.events.planning import (
    BudgetReallocated,
    CampaignChangeDecided,
    CampaignChangeRequested,
    CampaignStatusChanged,
    PlanApproved,
    ReallocationApplyFailed,
    SalesTargetProposalDecided,
    SalesTargetProposed,
)

CauseType = Literal[
    "stage.deadline_approaching",
    "stage.overdue",
    "stage.completed",
    "budget.threshold_crossed",
    "budget.overspend_forecast",
    "kpi.target_breached",
    "kpi.target_recovered",
    "budget.reallocation_proposed",
    "budget.reallocated",
    "reallocation.apply_failed",
    "plan.approved",
    "sales_target.at_risk",
    "sales_target.recovered",
    "discount.threshold_crossed",
    "discount.limit_exceeded",
    "campaign.status_changed",
    "campaign.change_requested",
    "campaign.change_decided",
    "sales_target.proposed",
    "sales_target.proposal_decided",
]
CAUSE_TYPES: frozenset[str] = frozenset(get_args(CauseType))
"""Event types that may notify someone (and that a recipient may mute); a
``campaign.status_changed`` notifies only when the status is ``rejected``."""

Channel = Literal["email", "webhook"]
CHANNELS: tuple[str, ...] = get_args(Channel)
NO_CHANNEL = "none"
"""The pseudo-channel of a skipped notification that no channel could carry."""

NotificationStatus = Literal["pending", "delivered", "failed", "skipped"]

_NAMESPACE = uuid.UUID("6f1f4a52-2a57-4b51-9a9e-5d3f0c1b7e21")
SOURCE = "notifier"


# --- causes and audiences ---------------------------------------------------------------------


@dataclass(frozen=True)
class Cause:
    """An incoming event someone must hear about."""

    event_id: uuid.UUID
    event_type: str
    occurred_at: dt.datetime
    data: EventData


_STAGE_EVENTS = (StageDeadlineApproaching, StageOverdue, StageCompleted)
_CAMPAIGN_OWNER_EVENTS = (
    BudgetThresholdCrossed,
    BudgetOverspendForecast,
    KpiTargetBreached,
    KpiTargetRecovered,
    DiscountLimitExceeded,
)
_UNIT_OWNER_EVENTS = (SalesTargetAtRisk, SalesTargetRecovered, SalesTargetProposalDecided)


def is_cause(event_type: str) -> bool:
    """Whether events of this type may notify anyone (all others are ignored unread)."""
    return event_type in CAUSE_TYPES


def lookups_for(data: EventData) -> Lookups:
    """Which directory entries the rules and messages of ``data`` need."""
    return replace(_entry_lookups(data), line_ids=_named_lines(data))


def _named_lines(data: EventData) -> frozenset[str]:
    """The budget lines a message names (by name when the directory knows them)."""
    if isinstance(data, DiscountThresholdCrossed | DiscountLimitExceeded):
        return frozenset({data.scope_id} if data.scope_kind == "line" else ())
    if isinstance(data, BudgetReallocationProposed | BudgetReallocated | ReallocationApplyFailed):
        return frozenset({data.to_line_id} if data.to_line_id else ())
    return frozenset()


def _entry_lookups(data: EventData) -> Lookups:
    """The plans, campaigns, stages, units and change requests ``data`` is routed and told by."""
    if isinstance(data, _STAGE_EVENTS):
        return Lookups(
            campaign_ids=frozenset({data.campaign_id}), stage_ids=frozenset({data.stage_id})
        )
    if isinstance(data, _CAMPAIGN_OWNER_EVENTS):
        return Lookups(campaign_ids=frozenset({data.campaign_id}))
    if isinstance(data, BudgetReallocationProposed | BudgetReallocated | ReallocationApplyFailed):
        return Lookups(
            plan_ids=frozenset({data.plan_id}),
            campaign_ids=frozenset(
                campaign_id
                for campaign_id in (data.from_campaign_id, data.to_campaign_id)
                if campaign_id
            ),
        )
    if isinstance(data, PlanApproved):
        return Lookups(plan_ids=frozenset({data.plan_id}))
    if isinstance(data, (*_UNIT_OWNER_EVENTS, SalesTargetProposed)):
        return Lookups(unit_ids=frozenset({data.unit_id}))
    if isinstance(data, DiscountThresholdCrossed | CampaignStatusChanged | CampaignChangeRequested):
        campaign_id = getattr(data, "campaign_id", None)
        return Lookups(
            plan_ids=frozenset({data.plan_id}),
            campaign_ids=frozenset({campaign_id} if campaign_id else ()),
        )
    if isinstance(data, CampaignChangeDecided):
        return Lookups(
            campaign_ids=frozenset({data.campaign_id}), request_ids=frozenset({data.request_id})
        )
    return Lookups()


@dataclass(frozen=True)
class Audience:
    """Who must hear about a cause — or which directory entry it waits for first."""

    recipients: tuple[str, ...] = ()
    waits_for: WaitKey | None = None


def audience_of(cause: Cause, *, directory: Directory) -> Audience:
    """Apply the routing rules of the module docstring to one cause."""
    data = cause.data
    if isinstance(data, _STAGE_EVENTS):
        if data.assignee:
            return Audience(recipients=(data.assignee,))
        stage = directory.stages.get(data.stage_id)
        if stage is None:
            # its stage.scheduled may still be on its way: only then is "no assignee" known
            return Audience(waits_for=WaitKey(kind="stage", identifier=data.stage_id))
        if stage.assignee:
            return Audience(recipients=(stage.assignee,))
        return _campaign_owner(data.campaign_id, directory)
    if isinstance(data, _CAMPAIGN_OWNER_EVENTS):
        return _campaign_owner(data.campaign_id, directory)
    if isinstance(data, BudgetReallocationProposed) and data.mode == "apply":
        return Audience()
    if isinstance(data, BudgetReallocated) and data.rule_id is None:
        return Audience()
    if isinstance(
        data,
        BudgetReallocationProposed
        | BudgetReallocated
        | ReallocationApplyFailed
        | PlanApproved
        | CampaignChangeRequested,
    ):
        return _plan_owner(data.plan_id, directory)
    if isinstance(data, DiscountThresholdCrossed):
        if data.campaign_id:
            return _campaign_owner(data.campaign_id, directory)
        return _plan_owner(data.plan_id, directory)
    if isinstance(data, CampaignStatusChanged):
        if data.status != "rejected":
            return Audience()
        return _campaign_owner(data.campaign_id, directory)
    if isinstance(data, CampaignChangeDecided):
        request = directory.change_requests.get(data.request_id)
        if request is not None:
            return Audience(recipients=(request.requested_by,))
        return _campaign_owner(data.campaign_id, directory)
    if isinstance(data, _UNIT_OWNER_EVENTS):
        return _unit_owner(data.unit_id, directory)
    if isinstance(data, SalesTargetProposed):
        unit = directory.units.get(data.unit_id)
        if unit is None:
            return Audience(waits_for=WaitKey(kind="unit", identifier=data.unit_id))
        if unit.parent_id is None:
            return Audience()  # the top unit's figures are a CMO's or admin's to decide
        return _unit_owner(unit.parent_id, directory)
    return Audience()


def _campaign_owner(campaign_id: str, directory: Directory) -> Audience:
    campaign = directory.campaigns.get(campaign_id)
    if campaign is None:
        return Audience(waits_for=WaitKey(kind="campaign", identifier=campaign_id))
    return Audience(recipients=(campaign.owner,))


def _plan_owner(plan_id: str, directory: Directory) -> Audience:
    plan = directory.plans.get(plan_id)
    if plan is None:
        return Audience(waits_for=WaitKey(kind="plan", identifier=plan_id))
    return Audience(recipients=(plan.owner,))


def _unit_owner(unit_id: str, directory: Directory) -> Audience:
    unit = directory.units.get(unit_id)
    if unit is None:
        return Audience(waits_for=WaitKey(kind="unit", identifier=unit_id))
    return Audience(recipients=(unit.owner,))


# --- recipients and drafts --------------------------------------------------------------------


@dataclass(frozen=True)
class RecipientPrefs:
    """A registered recipient's addresses and preferences."""

    recipient_id: str
    name: str | None
    email: str | None
    webhook_url: str | None
    channels: tuple[str, ...]
    muted_event_types: frozenset[str] = frozenset()

    def address(self, channel: str) -> str | None:
        """The address of ``channel`` (e-mail address or webhook URL), if configured."""
        if channel == "email":
            return self.email
        if channel == "webhook":
            return self.webhook_url
        return None


@dataclass(frozen=True)
class Message:
    """A notification's subject and plain-text body."""

    subject: str
    body: str


@dataclass(frozen=True)
class NotificationDraft:
    """A notification to record (pending delivery, or skipped with its reason)."""

    id: str
    recipient: str
    channel: str
    subject: str
    body: str
    status: NotificationStatus
    last_error: str | None
    cause_event_id: uuid.UUID
    cause_event_type: str
    campaign_id: str | None
    created_at: dt.datetime
    next_attempt_at: dt.datetime | None


def notification_id(*, cause_event_id: uuid.UUID, recipient: str, channel: str) -> str:
    """The deterministic id of the notification of a cause to a recipient on a channel."""
    return str(uuid.uuid5(_NAMESPACE, f"{cause_event_id}|{recipient}|{channel}"))


def draft_notifications(
    cause: Cause,
    *,
    audience: Sequence[str],
    recipients: Mapping[str, RecipientPrefs],
    directory: Directory,
    now: dt.datetime,
) -> list[NotificationDraft]:
    """One draft per recipient and enabled channel; a skipped draft where none applies."""
    drafts: list[NotificationDraft] = []
    for recipient_id in dict.fromkeys(audience):
        prefs = recipients.get(recipient_id)
        message = compose(
            cause, directory=directory, greeting=(prefs and prefs.name) or recipient_id
        )
        reason = _skip_reason(cause, recipient_id, prefs)
        channels = () if reason else prefs.channels  # type: ignore[union-attr]
        for channel in channels or (NO_CHANNEL,):
            address = prefs.address(channel) if prefs else None
            skip = reason or (None if address else f"no {channel} address configured")
            drafts.append(
                NotificationDraft(
                    id=notification_id(
                        cause_event_id=cause.event_id, recipient=recipient_id, channel=channel
                    ),
                    recipient=recipient_id,
                    channel=channel,
                    subject=message.subject,
                    body=message.body,
                    status="skipped" if skip else "pending",
                    last_error=skip,
                    cause_event_id=cause.event_id,
                    cause_event_type=cause.event_type,
                    campaign_id=getattr(cause.data, "campaign_id", None),
                    created_at=now,
                    next_attempt_at=None if skip else now,
                )
            )
    return drafts


def _skip_reason(cause: Cause, recipient_id: str, prefs: RecipientPrefs | None) -> str | None:
    if prefs is None:
        return (
            f"recipient {recipient_id!r} is not registered (PUT /api/v1/recipients/{recipient_id})"
        )
    if cause.event_type in prefs.muted_event_types:
        return f"the recipient muted {cause.event_type}"
    if not prefs.channels:
        return "the recipient has no channel enabled"
    return None


# --- messages ---------------------------------------------------------------------------------


def compose(cause: Cause, *, directory: Directory, greeting: str) -> Message:
    """The subject and plain-text body a person reads about ``cause``."""
    data = cause.data
    subject, lines = _content(data, cause.occurred_at, directory)
    footer = [
        "",
        f"Event: {cause.event_type} ({cause.event_id}), {when(cause.occurred_at)}",
        "-- MRM notifier",
    ]
    return Message(subject=subject, body="\n".join([f"Hello {greeting},", "", *lines, *footer]))


def _content(
    data: EventData, occurred_at: dt.datetime, directory: Directory
) -> tuple[str, list[str]]:
    if isinstance(data, _STAGE_EVENTS):
        return _stage_content(data, occurred_at, directory)
    if isinstance(data, planning_messages.EVENTS):
        return planning_messages.content(data, directory=directory)
    if isinstance(data, BudgetThresholdCrossed):
        campaign = campaign_label(data.campaign_id, directory)
        remaining = data.budget - data.spend
        return (
            f"Budget alert: {campaign} has spent {data.threshold_pct} % of its budget",
            [
                f"The campaign {campaign}{plan_suffix(data.campaign_id, directory)} has spent "
                f"{money(data.spend, data.currency)} of its "
                f"{money(data.budget, data.currency)} budget ({pct(data.spend, data.budget)}).",
                f"Remaining budget: {money(remaining, data.currency)}.",
            ],
        )
    if isinstance(data, BudgetOverspendForecast):
        campaign = campaign_label(data.campaign_id, directory)
        over = data.forecast_at_completion - data.budget
        return (
            f"Overspend forecast: {campaign} is heading for "
            f"{money(data.forecast_at_completion, data.currency)} on a "
            f"{money(data.budget, data.currency)} budget",
            [
                f"At the current burn rate the campaign {campaign}"
                f"{plan_suffix(data.campaign_id, directory)} will spend "
                f"{money(data.forecast_at_completion, data.currency)} by its end date, "
                f"{money(over, data.currency)} over its budget of "
                f"{money(data.budget, data.currency)}.",
                f"Spent so far: {money(data.spend, data.currency)} "
                f"({pct(data.spend, data.budget)} of the budget).",
            ],
        )
    if isinstance(data, KpiTargetBreached | KpiTargetRecovered):
        return _kpi_content(data, directory)
    if isinstance(data, BudgetReallocationProposed):
        plan = directory.plans.get(data.plan_id)
        currency = plan.currency if plan else ""
        source = campaign_label(data.from_campaign_id, directory)
        target = receiver_label(
            campaign_id=data.to_campaign_id, line_id=data.to_line_id, directory=directory
        )
        amount = money(data.amount, currency)
        return (
            f"Budget reallocation proposed in {plan_label(data.plan_id, directory)}: "
            f"{amount} from {source} to {target}",
            [
                f"Measurement proposes moving {amount} from {source} to {target} "
                f"in {plan_label(data.plan_id, directory)}.",
                f"Reason: {data.reason}",
                "Nothing changes until a CMO or admin reallocates the budget in planning.",
            ],
        )
    if isinstance(data, PlanApproved):
        label = plan_label(data.plan_id, directory)
        return (
            f"Plan approved: {label}",
            [f"The marketing plan {label} was approved by {data.approved_by}."],
        )
    return (data.event_type, [f"{data.event_type}: {data.model_dump_json()}"])


def _stage_content(
    data: StageDeadlineApproaching | StageOverdue | StageCompleted,
    occurred_at: dt.datetime,
    directory: Directory,
) -> tuple[str, list[str]]:
    campaign = campaign_label(data.campaign_id, directory)
    stage = f'"{data.name}"'
    where = (
        f"the stage {stage} of the campaign {campaign}{plan_suffix(data.campaign_id, directory)}"
    )
    deadline = when(data.deadline)
    if isinstance(data, StageDeadlineApproaching):
        left = duration(dt.timedelta(hours=data.hours_left))
        return (
            f"Reminder: stage {stage} of {campaign} is due in {left}",
            [
                f"Please finish {where}: it is due on {deadline}, in about {left}, "
                "and it is not done yet.",
            ],
        )
    if isinstance(data, StageOverdue):
        late = duration(max(occurred_at - data.deadline, dt.timedelta(0)))
        return (
            f"Overdue: stage {stage} of {campaign} missed its deadline {deadline}",
            [
                f"The deadline of {where} was {deadline} ({late} ago) and the stage is not done.",
                "Please complete it or agree a new deadline with the campaign owner.",
            ],
        )
    timing = (
        "on time"
        if data.completed_at <= data.deadline
        else f"{duration(data.completed_at - data.deadline)} after its deadline"
    )
    return (
        f"Completed: stage {stage} of {campaign}",
        [
            f"{where[0].upper()}{where[1:]} was completed on {when(data.completed_at)}, {timing} "
            f"(deadline {deadline})."
        ],
    )


def _kpi_content(
    data: KpiTargetBreached | KpiTargetRecovered, directory: Directory
) -> tuple[str, list[str]]:
    campaign = campaign_label(data.campaign_id, directory)
    kpi = kpi_label(data.kpi)
    better = "lower" if data.direction == "lower_is_better" else "higher"
    actual = "not measurable yet" if data.actual is None else number(data.actual)
    detail = (
        f"{kpi} is {actual} against a target of {number(data.target)} ({better} is better)"
        f"{_deviation(data)}."
    )
    if isinstance(data, KpiTargetBreached):
        return (
            f"KPI alert: {kpi} of {campaign} is off target",
            [
                f"The campaign {campaign}{plan_suffix(data.campaign_id, directory)} "
                "missed a KPI target.",
                detail,
            ],
        )
    return (
        f"KPI back on target: {kpi} of {campaign}",
        [
            f"The campaign {campaign}{plan_suffix(data.campaign_id, directory)} "
            "is back within its KPI target.",
            detail,
        ],
    )


def _deviation(data: KpiTargetBreached | KpiTargetRecovered) -> str:
    if data.actual is None or data.target == 0:
        return ""
    gap = (data.actual - data.target) / abs(data.target) * 100
    if gap == 0:
        return ", exactly on target"
    side = "above" if gap > 0 else "below"
    return f", {abs(gap):.1f} % {side} target"


# --- delivery ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff of failed deliveries."""

    max_attempts: int = 8
    initial_s: float = 1.0
    max_s: float = 300.0

    def delay_after(self, attempts: int) -> dt.timedelta:
        """How long to wait after the ``attempts``-th failed attempt (1-based)."""
        return dt.timedelta(seconds=min(self.max_s, self.initial_s * 2 ** (attempts - 1)))


@dataclass(frozen=True)
class Delivery:
    """A notification the delivery worker is about to send."""

    id: str
    recipient: str
    channel: str
    subject: str
    body: str
    attempts: int
    cause_event_id: uuid.UUID
    cause_event_type: str
    campaign_id: str | None
    created_at: dt.datetime
    address: str | None


@dataclass(frozen=True)
class Settlement:
    """What one delivery attempt changes: the row's new state and the event to publish."""

    status: NotificationStatus
    attempts: int
    last_error: str | None
    next_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None
    event: NotificationDelivered | NotificationFailed | None
    event_id: uuid.UUID | None


def settle(
    delivery: Delivery,
    *,
    error: str | None,
    permanent: bool,
    policy: RetryPolicy,
    now: dt.datetime,
) -> Settlement:
    """The outcome of an attempt: delivered, retried later, or failed for good."""
    attempts = delivery.attempts + 1
    fields = {
        "notification_id": delivery.id,
        "recipient": delivery.recipient,
        "channel": delivery.channel,
        "subject": delivery.subject,
        "body": delivery.body,
        "cause_event_id": delivery.cause_event_id,
        "cause_event_type": delivery.cause_event_type,
        "attempts": attempts,
    }
    if error is None:
        return Settlement(
            status="delivered",
            attempts=attempts,
            last_error=None,
            next_attempt_at=None,
            delivered_at=now,
            event=NotificationDelivered(**fields),
            event_id=uuid.uuid5(_NAMESPACE, f"{delivery.id}|delivered"),
        )
    if permanent or attempts >= policy.max_attempts:
        return Settlement(
            status="failed",
            attempts=attempts,
            last_error=error,
            next_attempt_at=None,
            delivered_at=None,
            event=NotificationFailed(**fields, error=error),
            event_id=uuid.uuid5(_NAMESPACE, f"{delivery.id}|failed"),
        )
    return Settlement(
        status="pending",
        attempts=attempts,
        last_error=error,
        next_attempt_at=now + policy.delay_after(attempts),
        delivered_at=None,
        event=None,
        event_id=None,
    )


def webhook_payload(delivery: Delivery) -> dict[str, object]:
    """The JSON document POSTed to a recipient's webhook."""
    return {
        "notification_id": delivery.id,
        "recipient": delivery.recipient,
        "subject": delivery.subject,
        "body": delivery.body,
        "cause_event_id": str(delivery.cause_event_id),
        "cause_event_type": delivery.cause_event_type,
        "campaign_id": delivery.campaign_id,
        "created_at": delivery.created_at.astimezone(dt.UTC).isoformat(),
        "attempt": delivery.attempts + 1,
    }
