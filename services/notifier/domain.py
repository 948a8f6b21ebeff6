"""Who hears about what, what they read, and how delivery retries — pure rules, no I/O.

A *cause* is an incoming event that people must hear about (a stage is overdue, a budget
threshold was crossed, a KPI breached its target, a plan was approved …). The rules:

- ``stage.deadline_approaching`` / ``stage.overdue`` / ``stage.completed`` → the stage's assignee
  (from the event, else from the planning directory), falling back to the campaign owner;
- ``budget.threshold_crossed`` / ``budget.overspend_forecast`` / ``kpi.target_breached`` /
  ``kpi.target_recovered`` → the campaign owner;
- ``budget.reallocation_proposed`` and ``plan.approved`` → the plan owner;
- ``kpi.snapshot`` and every other event → nobody.

When the recipient is not known yet (the planning event has not arrived: topics are not ordered
with respect to each other) the cause *waits* for that stage, campaign or plan and is notified
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
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, get_args

from shared.events.envelope import EventData
from shared.events.execution import (
    BudgetOverspendForecast,
    BudgetThresholdCrossed,
    StageCompleted,
    StageDeadlineApproaching,
    StageOverdue,
)
from shared.events.kpi import BudgetReallocationProposed, KpiTargetBreached, KpiTargetRecovered
from shared.events.notifications import NotificationDelivered, NotificationFailed
from shared.events.planning import CampaignState, PlanApproved, PlanCreated, StageScheduled

CauseType = Literal[
    "stage.deadline_approaching",
    "stage.overdue",
    "stage.completed",
    "budget.threshold_crossed",
    "budget.overspend_forecast",
    "kpi.target_breached",
    "kpi.target_recovered",
    "budget.reallocation_proposed",
    "plan.approved",
]
CAUSE_TYPES: frozenset[str] = frozenset(get_args(CauseType))
"""Event types that notify someone (and that a recipient may mute)."""

Channel = Literal["email", "webhook"]
CHANNELS: tuple[str, ...] = get_args(Channel)
NO_CHANNEL = "none"
"""The pseudo-channel of a skipped notification that no channel could carry."""

NotificationStatus = Literal["pending", "delivered", "failed", "skipped"]

_NAMESPACE = uuid.UUID("6f1f4a52-2a57-4b51-9a9e-5d3f0c1b7e21")
SOURCE = "notifier"


# --- the planning directory -------------------------------------------------------------------


@dataclass(frozen=True)
class PlanInfo:
    """What the notifier knows of a plan."""

    plan_id: str
    name: str
    owner: str
    currency: str


@dataclass(frozen=True)
class CampaignInfo:
    """What the notifier knows of a campaign."""

    campaign_id: str
    plan_id: str
    name: str
    owner: str
    version: int


@dataclass(frozen=True)
class StageInfo:
    """What the notifier knows of a stage."""

    stage_id: str
    campaign_id: str
    name: str
    assignee: str | None
    deadline: dt.datetime
    version: int


@dataclass(frozen=True)
class Directory:
    """The slice of the planning directory a cause needs (see :func:`lookups_for`)."""

    plans: Mapping[str, PlanInfo] = field(default_factory=dict)
    campaigns: Mapping[str, CampaignInfo] = field(default_factory=dict)
    stages: Mapping[str, StageInfo] = field(default_factory=dict)


@dataclass(frozen=True)
class Lookups:
    """Directory keys to load for a cause."""

    plan_ids: frozenset[str] = frozenset()
    campaign_ids: frozenset[str] = frozenset()
    stage_ids: frozenset[str] = frozenset()


def plan_info(data: PlanCreated) -> PlanInfo:
    """The directory entry of a created plan."""
    return PlanInfo(plan_id=data.plan_id, name=data.name, owner=data.owner, currency=data.currency)


def campaign_info(data: CampaignState) -> CampaignInfo:
    """The directory entry of a planned or updated campaign."""
    return CampaignInfo(
        campaign_id=data.campaign_id,
        plan_id=data.plan_id,
        name=data.name,
        owner=data.owner,
        version=data.version,
    )


def stage_info(data: StageScheduled) -> StageInfo:
    """The directory entry of a scheduled stage."""
    return StageInfo(
        stage_id=data.stage_id,
        campaign_id=data.campaign_id,
        name=data.name,
        assignee=data.assignee,
        deadline=data.deadline,
        version=data.version,
    )


def supersedes(*, incoming: int, current: int | None) -> bool:
    """Whether a versioned directory entry replaces the stored one (late events lose)."""
    return current is None or incoming >= current


@dataclass(frozen=True)
class WaitKey:
    """The directory entry a cause waits for: a campaign or a plan."""

    kind: Literal["campaign", "plan", "stage"]
    identifier: str


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
)


def is_cause(event_type: str) -> bool:
    """Whether events of this type notify anyone."""
    return event_type in CAUSE_TYPES


def lookups_for(data: EventData) -> Lookups:
    """Which plans, campaigns and stages the rules and messages of ``data`` need."""
    if isinstance(data, _STAGE_EVENTS):
        return Lookups(
            campaign_ids=frozenset({data.campaign_id}), stage_ids=frozenset({data.stage_id})
        )
    if isinstance(data, _CAMPAIGN_OWNER_EVENTS):
        return Lookups(campaign_ids=frozenset({data.campaign_id}))
    if isinstance(data, BudgetReallocationProposed):
        return Lookups(
            plan_ids=frozenset({data.plan_id}),
            campaign_ids=frozenset({data.from_campaign_id, data.to_campaign_id}),
        )
    if isinstance(data, PlanApproved):
        return Lookups(plan_ids=frozenset({data.plan_id}))
    return Lookups()


def lookups_with_plans(lookups: Lookups, directory: Directory) -> Lookups:
    """``lookups`` plus the plans of the campaigns found (for plan names in messages)."""
    plan_ids = {campaign.plan_id for campaign in directory.campaigns.values()}
    return Lookups(
        plan_ids=lookups.plan_ids | plan_ids,
        campaign_ids=lookups.campaign_ids,
        stage_ids=lookups.stage_ids,
    )


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
    if isinstance(data, BudgetReallocationProposed | PlanApproved):
        plan = directory.plans.get(data.plan_id)
        if plan is None:
            return Audience(waits_for=WaitKey(kind="plan", identifier=data.plan_id))
        return Audience(recipients=(plan.owner,))
    return Audience()


def _campaign_owner(campaign_id: str, directory: Directory) -> Audience:
    campaign = directory.campaigns.get(campaign_id)
    if campaign is None:
        return Audience(waits_for=WaitKey(kind="campaign", identifier=campaign_id))
    return Audience(recipients=(campaign.owner,))


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
        f"Event: {cause.event_type} ({cause.event_id}), {_when(cause.occurred_at)}",
        "-- MRM notifier",
    ]
    return Message(subject=subject, body="\n".join([f"Hello {greeting},", "", *lines, *footer]))


def _content(
    data: EventData, occurred_at: dt.datetime, directory: Directory
) -> tuple[str, list[str]]:
    if isinstance(data, _STAGE_EVENTS):
        return _stage_content(data, occurred_at, directory)
    if isinstance(data, BudgetThresholdCrossed):
        campaign = _campaign_label(data.campaign_id, directory)
        remaining = data.budget - data.spend
        return (
            f"Budget alert: {campaign} has spent {data.threshold_pct} % of its budget",
            [
                f"The campaign {campaign}{_plan_suffix(data.campaign_id, directory)} has spent "
                f"{_money(data.spend, data.currency)} of its "
                f"{_money(data.budget, data.currency)} budget ({_pct(data.spend, data.budget)}).",
                f"Remaining budget: {_money(remaining, data.currency)}.",
            ],
        )
    if isinstance(data, BudgetOverspendForecast):
        campaign = _campaign_label(data.campaign_id, directory)
        over = data.forecast_at_completion - data.budget
        return (
            f"Overspend forecast: {campaign} is heading for "
            f"{_money(data.forecast_at_completion, data.currency)} on a "
            f"{_money(data.budget, data.currency)} budget",
            [
                f"At the current burn rate the campaign {campaign}"
                f"{_plan_suffix(data.campaign_id, directory)} will spend "
                f"{_money(data.forecast_at_completion, data.currency)} by its end date, "
                f"{_money(over, data.currency)} over its budget of "
                f"{_money(data.budget, data.currency)}.",
                f"Spent so far: {_money(data.spend, data.currency)} "
                f"({_pct(data.spend, data.budget)} of the budget).",
            ],
        )
    if isinstance(data, KpiTargetBreached | KpiTargetRecovered):
        return _kpi_content(data, directory)
    if isinstance(data, BudgetReallocationProposed):
        plan = directory.plans.get(data.plan_id)
        currency = plan.currency if plan else ""
        source = _campaign_label(data.from_campaign_id, directory)
        target = _campaign_label(data.to_campaign_id, directory)
        amount = _money(data.amount, currency)
        return (
            f"Budget reallocation proposed in {_plan_label(data.plan_id, directory)}: "
            f"{amount} from {source} to {target}",
            [
                f"Measurement proposes moving {amount} from {source} to {target} "
                f"in {_plan_label(data.plan_id, directory)}.",
                f"Reason: {data.reason}",
                "Nothing changes until a CMO or admin reallocates the budget in planning.",
            ],
        )
    if isinstance(data, PlanApproved):
        label = _plan_label(data.plan_id, directory)
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
    campaign = _campaign_label(data.campaign_id, directory)
    stage = f'"{data.name}"'
    where = (
        f"the stage {stage} of the campaign {campaign}{_plan_suffix(data.campaign_id, directory)}"
    )
    deadline = _when(data.deadline)
    if isinstance(data, StageDeadlineApproaching):
        left = _duration(dt.timedelta(hours=data.hours_left))
        return (
            f"Reminder: stage {stage} of {campaign} is due in {left}",
            [
                f"Please finish {where}: it is due on {deadline}, in about {left}, "
                "and it is not done yet.",
            ],
        )
    if isinstance(data, StageOverdue):
        late = _duration(max(occurred_at - data.deadline, dt.timedelta(0)))
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
        else f"{_duration(data.completed_at - data.deadline)} after its deadline"
    )
    return (
        f"Completed: stage {stage} of {campaign}",
        [
            f"{where[0].upper()}{where[1:]} was completed on {_when(data.completed_at)}, {timing} "
            f"(deadline {deadline})."
        ],
    )


def _kpi_content(
    data: KpiTargetBreached | KpiTargetRecovered, directory: Directory
) -> tuple[str, list[str]]:
    campaign = _campaign_label(data.campaign_id, directory)
    kpi = _kpi_label(data.kpi)
    better = "lower" if data.direction == "lower_is_better" else "higher"
    actual = "not measurable yet" if data.actual is None else _number(data.actual)
    detail = (
        f"{kpi} is {actual} against a target of {_number(data.target)} ({better} is better)"
        f"{_deviation(data)}."
    )
    if isinstance(data, KpiTargetBreached):
        return (
            f"KPI alert: {kpi} of {campaign} is off target",
            [
                f"The campaign {campaign}{_plan_suffix(data.campaign_id, directory)} "
                "missed a KPI target.",
                detail,
            ],
        )
    return (
        f"KPI back on target: {kpi} of {campaign}",
        [
            f"The campaign {campaign}{_plan_suffix(data.campaign_id, directory)} "
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


def _campaign_label(campaign_id: str, directory: Directory) -> str:
    campaign = directory.campaigns.get(campaign_id)
    return f'"{campaign.name}"' if campaign else f"campaign {campaign_id}"


def _plan_label(plan_id: str, directory: Directory) -> str:
    plan = directory.plans.get(plan_id)
    return f'"{plan.name}"' if plan else f"plan {plan_id}"


def _plan_suffix(campaign_id: str, directory: Directory) -> str:
    campaign = directory.campaigns.get(campaign_id)
    if campaign is None or campaign.plan_id not in directory.plans:
        return ""
    return f" (plan {_plan_label(campaign.plan_id, directory)})"


_KPI_ACRONYMS = frozenset({"romi", "roi", "cac", "ltv", "cpl", "cpc", "ctr", "ckpi", "mql", "sql"})


def _kpi_label(kpi: str) -> str:
    if kpi.lower() in _KPI_ACRONYMS:
        return kpi.upper()
    return kpi.replace("_", " ")


def _money(amount: Decimal, currency: str) -> str:
    return f"{amount:,.2f} {currency}".rstrip()


def _number(value: Decimal) -> str:
    text = f"{value:,f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _pct(part: Decimal, whole: Decimal) -> str:
    if whole == 0:
        return "no budget"
    return f"{part / whole * 100:.1f} %"


def _when(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _duration(span: dt.timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


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
