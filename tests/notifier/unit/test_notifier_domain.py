"""Notifier rules without I/O: who is told, what they read, skips, and the retry schedule."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace
from decimal import Decimal

import pytest

from services.notifier import domain
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
    KpiSnapshot,
    KpiTargetBreached,
    KpiTargetRecovered,
)
from shared.events.notifications import NotificationDelivered, NotificationFailed
from shared.events.planning import PlanApproved

NOW = dt.datetime(2027, 3, 2, 9, 0, tzinfo=dt.UTC)
DEADLINE = dt.datetime(2027, 3, 1, 17, 0, tzinfo=dt.UTC)

DIRECTORY = domain.Directory(
    plans={"p1": domain.PlanInfo(plan_id="p1", name="Plan 2027", owner="cmo-carl", currency="EUR")},
    campaigns={
        "c1": domain.CampaignInfo(
            campaign_id="c1", plan_id="p1", name="Spring Sale", owner="ann", version=1
        ),
        "c2": domain.CampaignInfo(
            campaign_id="c2", plan_id="p1", name="Summer Push", owner="zoe", version=2
        ),
    },
    stages={
        "s1": domain.StageInfo(
            stage_id="s1",
            campaign_id="c1",
            name="Creative brief",
            assignee="bob",
            deadline=DEADLINE,
            version=1,
        ),
        "s2": domain.StageInfo(
            stage_id="s2",
            campaign_id="c1",
            name="Media buy",
            assignee=None,
            deadline=DEADLINE,
            version=1,
        ),
    },
)


def cause(data: EventData, occurred_at: dt.datetime = NOW) -> domain.Cause:
    return domain.Cause(
        event_id=uuid.uuid4(), event_type=data.event_type, occurred_at=occurred_at, data=data
    )


def overdue(
    stage_id: str = "s1", assignee: str | None = None, campaign: str = "c1"
) -> StageOverdue:
    return StageOverdue(
        stage_id=stage_id,
        campaign_id=campaign,
        name="Creative brief",
        deadline=DEADLINE,
        assignee=assignee,
    )


def breached(campaign: str = "c1") -> KpiTargetBreached:
    return KpiTargetBreached(
        campaign_id=campaign,
        target_id="t1",
        kpi="cpl",
        target=Decimal("10"),
        actual=Decimal("12.5"),
        direction="lower_is_better",
    )


def prefs(
    recipient: str, *channels: str, muted: frozenset[str] = frozenset()
) -> domain.RecipientPrefs:
    return domain.RecipientPrefs(
        recipient_id=recipient,
        name=recipient.title(),
        email=f"{recipient}@example.com",
        webhook_url=f"https://hooks.example.com/{recipient}",
        channels=channels,
        muted_event_types=muted,
    )


# --- routing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (overdue("s1"), ("bob",)),  # assignee from the directory
        (overdue("s1", assignee="eve"), ("eve",)),  # the event's own assignee wins
        (overdue("s2"), ("ann",)),  # stage without assignee → campaign owner
        (
            StageDeadlineApproaching(
                stage_id="s1", campaign_id="c1", name="Brief", deadline=DEADLINE, hours_left=5
            ),
            ("bob",),
        ),
        (
            StageCompleted(
                stage_id="s1",
                campaign_id="c1",
                name="Brief",
                deadline=DEADLINE,
                completed_at=DEADLINE,
            ),
            ("bob",),
        ),
        (
            BudgetThresholdCrossed(
                campaign_id="c1",
                threshold_pct=80,
                spend=Decimal("8000"),
                budget=Decimal("10000"),
                currency="EUR",
            ),
            ("ann",),
        ),
        (
            BudgetOverspendForecast(
                campaign_id="c2",
                spend=Decimal("6000"),
                budget=Decimal("10000"),
                forecast_at_completion=Decimal("12500"),
                currency="EUR",
            ),
            ("zoe",),
        ),
        (breached("c1"), ("ann",)),
        (
            KpiTargetRecovered(
                campaign_id="c2",
                target_id="t1",
                kpi="romi",
                target=Decimal("1.5"),
                actual=Decimal("1.6"),
                direction="higher_is_better",
            ),
            ("zoe",),
        ),
        (
            BudgetReallocationProposed(
                plan_id="p1",
                from_campaign_id="c1",
                to_campaign_id="c2",
                amount=Decimal("5000"),
                reason="c2 converts 3x better",
            ),
            ("cmo-carl",),
        ),
        (PlanApproved(plan_id="p1", approved_by="cmo-carl"), ("cmo-carl",)),
    ],
)
def test_each_cause_reaches_its_audience(data: EventData, expected: tuple[str, ...]) -> None:
    assert domain.audience_of(cause(data), directory=DIRECTORY) == domain.Audience(
        recipients=expected
    )


def test_kpi_snapshot_notifies_nobody() -> None:
    snapshot = KpiSnapshot(campaign_id="c1", as_of=NOW, kpis={"cpl": Decimal("3")})
    assert not domain.is_cause(snapshot.event_type)
    assert domain.audience_of(cause(snapshot), directory=DIRECTORY) == domain.Audience()


def test_unknown_stage_campaign_or_plan_makes_the_cause_wait() -> None:
    empty = domain.Directory()
    assert domain.audience_of(cause(overdue("s9", campaign="c9")), directory=empty).waits_for == (
        domain.WaitKey(kind="stage", identifier="s9")
    )
    crossed = BudgetThresholdCrossed(
        campaign_id="c9",
        threshold_pct=80,
        spend=Decimal("1"),
        budget=Decimal("1"),
        currency="EUR",
    )
    assert domain.audience_of(cause(crossed), directory=empty).waits_for == domain.WaitKey(
        kind="campaign", identifier="c9"
    )
    # a stage known to have no assignee, in an unknown campaign, waits for the campaign
    stage_only = domain.Directory(stages={"s2": DIRECTORY.stages["s2"]})
    assert domain.audience_of(cause(overdue("s2")), directory=stage_only).waits_for == (
        domain.WaitKey(kind="campaign", identifier="c1")
    )
    approved = PlanApproved(plan_id="p9", approved_by="x")
    assert domain.audience_of(cause(approved), directory=empty).waits_for == domain.WaitKey(
        kind="plan", identifier="p9"
    )
    # an assignee on the event needs no directory at all
    assert domain.audience_of(cause(overdue("s9", "eve", "c9")), directory=empty).recipients == (
        "eve",
    )


def test_a_proposal_to_a_budget_line_names_it_when_known_else_by_id() -> None:
    proposal = BudgetReallocationProposed(
        plan_id="p1", from_campaign_id="c1", to_line_id="l4", amount=Decimal("5000"), reason="r"
    )
    assert domain.lookups_for(proposal) == domain.Lookups(
        plan_ids=frozenset({"p1"}), campaign_ids=frozenset({"c1"}), line_ids=frozenset({"l4"})
    )
    assert domain.audience_of(cause(proposal), directory=DIRECTORY).recipients == ("cmo-carl",)
    unknown = domain.compose(cause(proposal), directory=DIRECTORY, greeting="Carl")
    assert unknown.subject.endswith('from "Spring Sale" to budget line l4')
    line = domain.LineInfo(line_id="l4", plan_id="p1", name="Acme", version=1)
    known = domain.compose(
        cause(proposal), directory=replace(DIRECTORY, lines={"l4": line}), greeting="Carl"
    )
    assert known.subject == (
        'Budget reallocation proposed in "Plan 2027": 5,000.00 EUR from "Spring Sale" to '
        'the budget line "Acme"'
    )
    assert 'moving 5,000.00 EUR from "Spring Sale" to the budget line "Acme" in' in known.body


def test_lookups_name_what_rules_and_messages_need() -> None:
    proposal = BudgetReallocationProposed(
        plan_id="p1", from_campaign_id="c1", to_campaign_id="c2", amount=Decimal("1"), reason="r"
    )
    assert domain.lookups_for(proposal) == domain.Lookups(
        plan_ids=frozenset({"p1"}), campaign_ids=frozenset({"c1", "c2"})
    )
    assert domain.lookups_for(overdue()) == domain.Lookups(
        campaign_ids=frozenset({"c1"}), stage_ids=frozenset({"s1"})
    )


# --- messages ---------------------------------------------------------------------------------


def test_overdue_message_names_stage_campaign_plan_and_deadline() -> None:
    message = domain.compose(cause(overdue()), directory=DIRECTORY, greeting="Bob")
    assert message.subject == (
        'Overdue: stage "Creative brief" of "Spring Sale" missed its deadline 2027-03-01 17:00 UTC'
    )
    assert message.body.startswith("Hello Bob,\n")
    assert '(plan "Plan 2027")' in message.body
    assert "(16 h ago)" in message.body


def test_budget_messages_show_money_and_shares() -> None:
    crossed = BudgetThresholdCrossed(
        campaign_id="c1",
        threshold_pct=80,
        spend=Decimal("8123.40"),
        budget=Decimal("10000"),
        currency="EUR",
    )
    message = domain.compose(cause(crossed), directory=DIRECTORY, greeting="Ann")
    assert message.subject == 'Budget alert: "Spring Sale" has spent 80 % of its budget'
    assert "8,123.40 EUR of its 10,000.00 EUR budget (81.2 %)" in message.body
    assert "Remaining budget: 1,876.60 EUR." in message.body

    forecast = BudgetOverspendForecast(
        campaign_id="c2",
        spend=Decimal("6000"),
        budget=Decimal("10000"),
        forecast_at_completion=Decimal("12500"),
        currency="EUR",
    )
    message = domain.compose(cause(forecast), directory=DIRECTORY, greeting="Zoe")
    assert "12,500.00 EUR on a 10,000.00 EUR budget" in message.subject
    assert "2,500.00 EUR over its budget" in message.body


def test_kpi_message_explains_direction_and_gap() -> None:
    message = domain.compose(cause(breached()), directory=DIRECTORY, greeting="Ann")
    assert message.subject == 'KPI alert: CPL of "Spring Sale" is off target'
    assert "CPL is 12.5 against a target of 10 (lower is better), 25.0 % above target." in (
        message.body
    )


def test_messages_fall_back_to_ids_when_names_are_unknown() -> None:
    data = overdue("s9", "eve", "c9")
    message = domain.compose(cause(data), directory=domain.Directory(), greeting="eve")
    assert "of campaign c9" in message.subject


def test_deadline_approaching_and_completed_wording() -> None:
    soon = StageDeadlineApproaching(
        stage_id="s1", campaign_id="c1", name="Creative brief", deadline=DEADLINE, hours_left=26.5
    )
    assert domain.compose(cause(soon), directory=DIRECTORY, greeting="Bob").subject == (
        'Reminder: stage "Creative brief" of "Spring Sale" is due in 1 d 2 h'
    )
    late = StageCompleted(
        stage_id="s1",
        campaign_id="c1",
        name="Creative brief",
        deadline=DEADLINE,
        completed_at=DEADLINE + dt.timedelta(hours=3),
    )
    body = domain.compose(cause(late), directory=DIRECTORY, greeting="Bob").body
    assert "3 h after its deadline" in body


# --- drafts -----------------------------------------------------------------------------------


def test_one_pending_draft_per_enabled_channel_with_deterministic_ids() -> None:
    c = cause(overdue())
    drafts = domain.draft_notifications(
        c,
        audience=("bob",),
        recipients={"bob": prefs("bob", "email", "webhook")},
        directory=DIRECTORY,
        now=NOW,
    )
    assert [(d.channel, d.status, d.next_attempt_at) for d in drafts] == [
        ("email", "pending", NOW),
        ("webhook", "pending", NOW),
    ]
    again = domain.draft_notifications(
        c,
        audience=("bob", "bob"),
        recipients={"bob": prefs("bob", "email", "webhook")},
        directory=DIRECTORY,
        now=NOW,
    )
    assert [d.id for d in again] == [d.id for d in drafts]
    assert drafts[0].campaign_id == "c1"
    assert drafts[0].body.startswith("Hello Bob,")


@pytest.mark.parametrize(
    ("recipients", "reason"),
    [
        ({}, "recipient 'bob' is not registered"),
        ({"bob": prefs("bob")}, "the recipient has no channel enabled"),
        (
            {"bob": prefs("bob", "email", muted=frozenset({"stage.overdue"}))},
            "the recipient muted stage.overdue",
        ),
    ],
)
def test_undeliverable_causes_are_recorded_as_skipped(
    recipients: dict[str, domain.RecipientPrefs], reason: str
) -> None:
    (draft,) = domain.draft_notifications(
        cause(overdue()), audience=("bob",), recipients=recipients, directory=DIRECTORY, now=NOW
    )
    assert draft.status == "skipped"
    assert draft.channel == domain.NO_CHANNEL
    assert draft.next_attempt_at is None
    assert draft.last_error is not None and draft.last_error.startswith(reason)
    assert "Creative brief" in draft.subject


# --- retries ----------------------------------------------------------------------------------


def test_retry_schedule_doubles_and_is_capped() -> None:
    policy = domain.RetryPolicy(max_attempts=12, initial_s=1, max_s=300)
    delays = [policy.delay_after(n).total_seconds() for n in range(1, 12)]
    assert delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]


def delivery(attempts: int) -> domain.Delivery:
    return domain.Delivery(
        id="n1",
        recipient="bob",
        channel="webhook",
        subject="s",
        body="b",
        attempts=attempts,
        cause_event_id=uuid.uuid4(),
        cause_event_type="stage.overdue",
        campaign_id="c1",
        created_at=NOW,
        address="https://x",
    )


def test_settle_success_emits_delivered_with_stable_event_id() -> None:
    policy = domain.RetryPolicy(max_attempts=3)
    first = domain.settle(delivery(1), error=None, permanent=False, policy=policy, now=NOW)
    assert first.status == "delivered"
    assert first.attempts == 2
    assert first.delivered_at == NOW
    assert isinstance(first.event, NotificationDelivered)
    assert first.event.attempts == 2
    again = domain.settle(delivery(1), error=None, permanent=False, policy=policy, now=NOW)
    assert again.event_id == first.event_id


def test_settle_transient_failure_schedules_backoff_until_the_last_attempt() -> None:
    policy = domain.RetryPolicy(max_attempts=3, initial_s=2, max_s=300)
    retry = domain.settle(delivery(1), error="HTTP 503", permanent=False, policy=policy, now=NOW)
    assert retry.status == "pending"
    assert retry.event is None
    assert retry.next_attempt_at == NOW + dt.timedelta(seconds=4)
    last = domain.settle(delivery(2), error="HTTP 503", permanent=False, policy=policy, now=NOW)
    assert last.status == "failed"
    assert isinstance(last.event, NotificationFailed)
    assert last.event.error == "HTTP 503"
    assert last.next_attempt_at is None


def test_settle_permanent_failure_fails_at_once() -> None:
    policy = domain.RetryPolicy(max_attempts=8)
    result = domain.settle(delivery(0), error="HTTP 404", permanent=True, policy=policy, now=NOW)
    assert (result.status, result.attempts) == ("failed", 1)
