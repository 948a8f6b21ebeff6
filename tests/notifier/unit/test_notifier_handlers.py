"""Handlers and delivery worker on a real SQLite file with fake senders (no network)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from notifier_testkit import FakeEmailSender, FakeWebhookSender
from sqlalchemy import Engine, select

from services.notifier import domain, store
from services.notifier.delivery import DeliveryWorker
from services.notifier.handlers import NotifierHandlers
from services.notifier.metrics import NotifierMetrics
from services.notifier.senders import Senders
from shared.consumer import Consumed
from shared.events import Envelope, EventData, new_envelope
from shared.events.discounts import DiscountThresholdCrossed
from shared.events.execution import BudgetThresholdCrossed, StageOverdue
from shared.events.kpi import KpiSnapshot, SalesTargetAtRisk
from shared.events.planning import (
    BudgetLineRemoved,
    BudgetLineSet,
    CampaignChangeDecided,
    CampaignChangeRequested,
    CampaignPlanned,
    CampaignUpdated,
    PlanCreated,
    SalesTargetSet,
    SalesUnitSet,
    StageScheduled,
)
from shared.metrics import ServiceMetrics
from shared.sql import make_engine

DEADLINE = dt.datetime(2027, 3, 1, 17, 0, tzinfo=dt.UTC)


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = dt.datetime(2027, 3, 2, 9, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


class Harness:
    """Handlers + worker on one SQLite file; records wake-ups."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.clock = Clock()
        self.wakes = 0
        self.email = FakeEmailSender()
        self.webhook = FakeWebhookSender()
        metrics = NotifierMetrics(ServiceMetrics("notifier_test"))
        self.handlers = NotifierHandlers(
            engine=engine, metrics=metrics, after_commit=self._wake, clock=self.clock
        )
        self.worker = DeliveryWorker(
            engine=engine,
            senders=Senders(email=self.email, webhook=self.webhook),
            policy=domain.RetryPolicy(max_attempts=3, initial_s=1, max_s=300),
            metrics=metrics,
            on_settled=self._wake,
            clock=self.clock,
        )

    def _wake(self) -> None:
        self.wakes += 1

    async def deliver(self, data: EventData, envelope: Envelope | None = None) -> Envelope:
        envelope = envelope or new_envelope(data, source="test")
        consumed = Consumed(envelope=envelope, data=data, topic=data.topic, partition=0, offset=0)
        await self.handlers.on_event(consumed)
        return envelope

    def log(self, recipient: str | None = None) -> list[store.NotificationRecord]:
        with store.UnitOfWork(self.engine) as uow:
            return store.list_notifications(session=uow.session, recipient=recipient)

    def outbox(self) -> list[dict]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(store.MESSAGING.outbox.c.payload).order_by(store.MESSAGING.outbox.c.id)
            ).all()
        return [row[0] for row in rows]

    def register(self, recipient: str, *channels: str) -> None:
        with store.UnitOfWork(self.engine) as uow:
            store.put_recipient(
                session=uow.session,
                prefs=domain.RecipientPrefs(
                    recipient_id=recipient,
                    name=None,
                    email=f"{recipient}@example.com",
                    webhook_url=f"https://hooks.example.com/{recipient}",
                    channels=channels,
                ),
                now=self.clock(),
            )
            uow.commit()


@pytest.fixture
def harness(tmp_path) -> Iterator[Harness]:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'notifier.db'}")
    store.create_schema(engine)
    yield Harness(engine)
    engine.dispose()


def campaign(version: int = 1, owner: str = "ann", name: str = "Spring Sale") -> CampaignPlanned:
    return CampaignPlanned(
        campaign_id="c1",
        plan_id="p1",
        name=name,
        channel="search",
        owner=owner,
        budget=Decimal("10000"),
        currency="EUR",
        start_date=dt.date(2027, 3, 1),
        end_date=dt.date(2027, 5, 31),
        version=version,
    )


def plan() -> PlanCreated:
    return PlanCreated(
        plan_id="p1",
        name="Plan 2027",
        period_start=dt.date(2027, 1, 1),
        period_end=dt.date(2027, 12, 31),
        currency="EUR",
        owner="carl",
    )


def stage(assignee: str | None = "bob") -> StageScheduled:
    return StageScheduled(
        stage_id="s1",
        campaign_id="c1",
        name="Creative brief",
        deadline=DEADLINE,
        assignee=assignee,
    )


def overdue() -> StageOverdue:
    return StageOverdue(stage_id="s1", campaign_id="c1", name="Creative brief", deadline=DEADLINE)


def crossed() -> BudgetThresholdCrossed:
    return BudgetThresholdCrossed(
        campaign_id="c1",
        threshold_pct=100,
        spend=Decimal("10000"),
        budget=Decimal("10000"),
        currency="EUR",
    )


async def test_cause_is_recorded_once_per_recipient_and_channel(harness: Harness) -> None:
    harness.register("bob", "email", "webhook")
    for data in (plan(), campaign(), stage()):
        await harness.deliver(data)
    envelope = await harness.deliver(overdue())
    await harness.deliver(overdue(), envelope=envelope)  # redelivery

    rows = harness.log()
    assert sorted((row.recipient, row.channel, row.status) for row in rows) == [
        ("bob", "email", "pending"),
        ("bob", "webhook", "pending"),
    ]
    assert {row.cause_event_id for row in rows} == {str(envelope.event_id)}
    assert 'stage "Creative brief" of "Spring Sale"' in rows[0].subject


async def test_unregistered_owner_is_logged_as_skipped(harness: Harness) -> None:
    await harness.deliver(campaign())
    envelope = await harness.deliver(crossed())
    (row,) = harness.log(recipient="ann")
    assert (row.status, row.channel, row.cause_event_id) == (
        "skipped",
        "none",
        str(envelope.event_id),
    )
    assert "not registered" in (row.last_error or "")


async def test_snapshot_and_unused_planning_events_record_nothing(harness: Harness) -> None:
    await harness.deliver(KpiSnapshot(campaign_id="c1", as_of=DEADLINE, kpis={"cpl": None}))
    assert harness.log() == []
    assert harness.wakes == 0


async def test_cause_before_its_campaign_waits_and_is_notified_when_it_arrives(
    harness: Harness,
) -> None:
    harness.register("ann", "email")
    envelope = await harness.deliver(crossed())
    assert harness.log() == []
    await harness.deliver(campaign())
    (row,) = harness.log()
    assert (row.recipient, row.cause_event_id) == ("ann", str(envelope.event_id))
    assert '"Spring Sale"' in row.subject


async def test_stage_event_waits_for_its_stage_not_just_the_campaign(harness: Harness) -> None:
    harness.register("bob", "email")
    await harness.deliver(overdue())  # before any planning event
    await harness.deliver(campaign())  # the campaign alone must not route it to the owner
    assert harness.log() == []
    await harness.deliver(stage(assignee="bob"))
    assert [(row.recipient, row.status) for row in harness.log()] == [("bob", "pending")]


async def test_sweeper_releases_causes_whose_campaign_arrived_elsewhere(harness: Harness) -> None:
    harness.register("ann", "email")
    await harness.deliver(crossed())
    with store.UnitOfWork(harness.engine) as uow:  # as if another process stored the campaign
        store.upsert_campaign(
            session=uow.session, campaign=domain.campaign_info(campaign()), now=harness.clock()
        )
        uow.commit()
    await harness.handlers.release_ready()
    assert [row.recipient for row in harness.log()] == ["ann"]


async def test_directory_keeps_the_newest_campaign_version(harness: Harness) -> None:
    harness.register("zoe", "email")
    await harness.deliver(
        CampaignUpdated(**{**campaign(version=2, owner="zoe").model_dump(), "version": 2})
    )
    await harness.deliver(campaign(version=1, owner="ann"))  # late, older
    await harness.deliver(crossed())
    assert [row.recipient for row in harness.log()] == ["zoe"]


async def test_worker_delivers_and_writes_delivered_events(harness: Harness) -> None:
    harness.register("bob", "email", "webhook")
    for data in (campaign(), stage()):
        await harness.deliver(data)
    envelope = await harness.deliver(overdue())

    assert await harness.worker.deliver_once() == 2
    assert await harness.worker.deliver_once() == 0
    assert [mail["to"] for mail in harness.email.sent] == ["bob@example.com"]
    (post,) = harness.webhook.posted
    assert post["payload"]["cause_event_id"] == str(envelope.event_id)
    assert {row.status for row in harness.log()} == {"delivered"}
    events = [e for e in harness.outbox() if e["event_type"] == "notification.delivered"]
    assert sorted(e["data"]["channel"] for e in events) == ["email", "webhook"]
    assert {e["data"]["cause_event_id"] for e in events} == {str(envelope.event_id)}


async def test_worker_retries_with_backoff_then_fails_for_good(harness: Harness) -> None:
    harness.register("bob", "webhook")
    for data in (campaign(), stage()):
        await harness.deliver(data)
    await harness.deliver(overdue())
    harness.webhook.fail_next = 10

    assert await harness.worker.deliver_once() == 1
    (row,) = harness.log()
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_attempt_at == harness.clock() + dt.timedelta(seconds=1)
    assert await harness.worker.deliver_once() == 0  # not due yet

    harness.clock.advance(1)
    assert await harness.worker.deliver_once() == 1
    (row,) = harness.log()
    assert row.next_attempt_at == harness.clock() + dt.timedelta(seconds=2)

    harness.clock.advance(2)
    assert await harness.worker.deliver_once() == 1
    (row,) = harness.log()
    assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 3, None)
    assert row.last_error == "webhook: HTTP 503 Service Unavailable"
    (failed,) = [e for e in harness.outbox() if e["event_type"] == "notification.failed"]
    assert failed["data"]["attempts"] == 3


async def test_worker_recovers_after_transient_failures(harness: Harness) -> None:
    harness.register("bob", "email")
    for data in (campaign(), stage()):
        await harness.deliver(data)
    await harness.deliver(overdue())
    harness.email.fail_next = 1
    await harness.worker.deliver_once()
    harness.clock.advance(1)
    await harness.worker.deliver_once()
    (row,) = harness.log()
    assert (row.status, row.attempts, row.last_error) == ("delivered", 2, None)
    assert len(harness.email.sent) == 1


async def test_leased_notification_is_not_sent_twice(harness: Harness) -> None:
    harness.register("bob", "email")
    for data in (campaign(), stage()):
        await harness.deliver(data)
    await harness.deliver(overdue())
    now = harness.clock()
    with store.UnitOfWork(harness.engine) as uow:
        first = store.claim_due(
            session=uow.session, now=now, lease_until=now + dt.timedelta(minutes=5), limit=10
        )
        second = store.claim_due(
            session=uow.session, now=now, lease_until=now + dt.timedelta(minutes=5), limit=10
        )
        uow.commit()
    assert (len(first), len(second)) == (1, 0)


async def test_channel_removed_after_recording_fails_permanently(harness: Harness) -> None:
    harness.register("bob", "email", "webhook")
    for data in (campaign(), stage()):
        await harness.deliver(data)
    await harness.deliver(overdue())
    harness.register("bob", "email")
    await harness.worker.deliver_once()
    statuses = {row.channel: (row.status, row.attempts) for row in harness.log()}
    assert statuses == {"email": ("delivered", 1), "webhook": ("failed", 1)}


def test_notification_ids_are_unique_per_cause_recipient_channel() -> None:
    cause_id = uuid.uuid4()
    ids = {
        domain.notification_id(cause_event_id=cause_id, recipient=r, channel=c)
        for r in ("ann", "bob")
        for c in ("email", "webhook", "none")
    }
    assert len(ids) == 6


async def test_a_cause_waiting_too_long_is_dropped_and_counted(harness: Harness) -> None:
    harness.register("bob", "email")
    await harness.deliver(overdue())  # its stage is never scheduled
    await harness.handlers.release_ready()
    with store.UnitOfWork(harness.engine) as uow:
        assert store.count_parked(session=uow.session) == 1  # a week has not passed
    harness.clock.advance(7 * 24 * 3600 + 1)
    await harness.handlers.release_ready()
    with store.UnitOfWork(harness.engine) as uow:
        assert store.count_parked(session=uow.session) == 0
    metrics = harness.handlers.metrics
    assert metrics.parked_expired.labels()._value.get() == 1
    assert metrics.parked_waiting.labels()._value.get() == 0
    await harness.deliver(stage(assignee="bob"))  # too late: nothing is released any more
    assert harness.log() == []


def sales_unit(unit_id: str, owner: str, parent: str | None = None) -> SalesUnitSet:
    return SalesUnitSet(unit_id=unit_id, parent_id=parent, kind="region", name="North", owner=owner)


def at_risk() -> SalesTargetAtRisk:
    return SalesTargetAtRisk(
        target_id="t1",
        unit_id="north",
        period="2027-Q1",
        period_start=dt.date(2027, 1, 1),
        period_end=dt.date(2027, 3, 31),
        target=Decimal("100000"),
        currency="EUR",
        sales=Decimal("36000"),
        forecast=Decimal("72000"),
        forecast_share=Decimal("0.72"),
        threshold=Decimal("0.9"),
        as_of=DEADLINE,
    )


async def test_at_risk_before_its_unit_waits_then_goes_to_the_unit_owner_once(
    harness: Harness,
) -> None:
    harness.register("nina", "email")
    envelope = await harness.deliver(at_risk())
    assert harness.log() == []
    await harness.deliver(sales_unit("north", owner="nina"))
    await harness.deliver(at_risk(), envelope=envelope)  # redelivery
    (row,) = harness.log()
    assert (row.recipient, row.channel, row.cause_event_id) == (
        "nina",
        "email",
        str(envelope.event_id),
    )
    assert row.subject == 'Sales target at risk: region "North", 2027-Q1'


async def test_change_decision_goes_to_the_requester_remembered_from_the_request(
    harness: Harness,
) -> None:
    for data in (plan(), campaign()):
        await harness.deliver(data)
    await harness.deliver(
        CampaignChangeRequested(
            request_id="r1",
            campaign_id="c1",
            plan_id="p1",
            changes={"budget": "12000.00"},
            requested_by="mia",
        )
    )
    await harness.deliver(
        CampaignChangeDecided(
            request_id="r1", campaign_id="c1", plan_id="p1", decision="accepted", decided_by="carl"
        )
    )
    assert sorted(row.recipient for row in harness.log()) == [
        "carl",
        "mia",
    ]


async def test_sales_target_set_is_not_a_cause(harness: Harness) -> None:
    await harness.deliver(sales_unit("north", owner="nina"))
    await harness.deliver(
        SalesTargetSet(
            target_id="t1",
            unit_id="north",
            period="2027-Q1",
            period_start=dt.date(2027, 1, 1),
            period_end=dt.date(2027, 3, 31),
            amount=Decimal("100000"),
            currency="EUR",
            set_by="cmo",
        )
    )
    assert harness.log() == []


def budget_line(version: int = 1, name: str = "Acme") -> BudgetLineSet:
    return BudgetLineSet(
        line_id="l7",
        plan_id="p1",
        name=name,
        amount=Decimal("20000"),
        currency="EUR",
        version=version,
    )


def line_fund_alert() -> DiscountThresholdCrossed:
    return DiscountThresholdCrossed(
        scope_kind="line",
        scope_id="l7",
        plan_id="p1",
        threshold=80,
        used=Decimal("4000"),
        promo_fund=Decimal("5000"),
        currency="EUR",
    )


async def test_a_line_alert_names_the_newest_version_of_the_line(harness: Harness) -> None:
    harness.register("carl", "email")
    await harness.deliver(plan())
    await harness.deliver(budget_line(version=2, name="Acme Pro"))
    await harness.deliver(budget_line(version=1, name="Acme"))  # late, older
    await harness.deliver(line_fund_alert())
    (row,) = harness.log()
    assert row.subject.startswith('Promo fund alert: the budget line "Acme Pro" of "Plan 2027"')


async def test_a_line_alert_released_by_its_plan_names_the_line_learnt_meanwhile(
    harness: Harness,
) -> None:
    harness.register("carl", "email")
    await harness.deliver(line_fund_alert())  # waits for its plan (the owner), not the line
    await harness.deliver(budget_line())
    assert harness.log() == []
    await harness.deliver(plan())
    (row,) = harness.log()
    assert 'the budget line "Acme" of "Plan 2027"' in row.subject


async def test_a_line_alert_does_not_wait_for_an_unknown_or_removed_line(harness: Harness) -> None:
    harness.register("carl", "email")
    await harness.deliver(plan())
    await harness.deliver(line_fund_alert())
    await harness.deliver(budget_line())
    await harness.deliver(BudgetLineRemoved(line_id="l7", plan_id="p1"))
    await harness.deliver(line_fund_alert())
    subjects = [row.subject for row in harness.log()]
    assert len(subjects) == 2
    assert all('the budget line l7 of "Plan 2027"' in subject for subject in subjects)
