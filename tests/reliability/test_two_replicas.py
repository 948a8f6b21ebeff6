"""Two replicas of every service: one publish, one alert and one e-mail per cause.

Each test starts two in-process replicas of a service (each with its own engine, broker
connection and background loops, as two processes would have) on the real embedded broker,
PostgreSQL (skipped without ``MRM_TEST_POSTGRES_URL``) and the session's chDB engine, then reads
the output topic to its end and counts by event_id *and* by record. Each service's replicas use
a consumer group of their own, started at the current end of its topics
(``start_group_at_end``): no replica of an earlier test to outwait, no earlier test's backlog.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import TopicPartition
from clickhouse_connect.driver.client import Client
from kafka_kit import start_group_at_end
from replicas_kit import (
    FlakySmtp,
    Publishes,
    containing,
    read_to_end,
    start_replicas,
    unpublished,
    wait_until,
)
from sqlalchemy import MetaData, func, or_, select, text
from sqlalchemy.orm import Session

from services.execution import store as execution_store
from services.execution.app import create_app as execution_app
from services.execution.settings import ExecutionSettings
from services.measurement import sales_watch, warehouse
from services.measurement.app import create_app as measurement_app
from services.measurement.settings import MeasurementSettings
from services.measurement.warehouse import alerts, sales_targets
from services.measurement.warehouse import discounts as discount_tables
from services.notifier import domain as notifier_domain
from services.notifier import store as notifier_store
from services.notifier.app import create_app as notifier_app
from services.notifier.settings import NotifierSettings
from services.planning.app import create_app as planning_app
from services.planning.settings import PlanningSettings
from services.planning.store import MESSAGING as PLANNING_MESSAGING
from shared.events import new_envelope
from shared.events.ingest import LeadStageChanged, SaleCompleted, SpendRecorded
from shared.events.kpi import KpiSnapshot, KpiTargetBreached
from shared.events.planning import (
    CampaignPlanned,
    DiscountLimitSet,
    KpiTargetSet,
    PlanCreated,
    SalesTargetSet,
    SalesUnitSet,
    StageScheduled,
)
from shared.kafka import make_broker
from shared.leadership import Leadership, _Listener
from shared.metrics import ServiceMetrics
from shared.outbox import OutboxRelay
from shared.publisher import EventPublisher
from shared.sql import add_to_outbox, define_messaging_tables, make_engine
from shared.topics import EXECUTION, INGEST_TOPICS, KPI, NOTIFICATIONS, PLANNING, SPEND, TASKS

pytestmark = pytest.mark.integration

POSTGRES = pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
TOKENS = {"t-admin": {"subject": "root", "role": "admin"}}
MONITOR_JOBS = ("evaluate", "reallocate", "snapshot")
ADMIN = {"Authorization": "Bearer t-admin"}


def test_measurement_two_replicas_alert_propose_and_snapshot_once_per_cause(
    kafka_bootstrap: str, chdb_url: str, serve_app, topic_reader, tmp_path, unique_id: str
) -> None:  # type: ignore[no-untyped-def]
    """Two replicas ingest a plan's events (each a share of the partitions): one breach alert,
    one reallocation proposal, and one snapshot per campaign and round, whichever replica got
    which event. Then the leader stops: the other leads on from the saved marks, with one
    recovery and nothing of the first part again."""
    settings = _measurement_settings(
        kafka_bootstrap,
        chdb_url,
        tmp_path,
        unique_id,
        reallocation_interval_s=0.2,
        snapshot_interval_s=0.5,
        alert_min_spend_share=Decimal(0),
    )
    apps = [measurement_app(settings) for _ in range(2)]
    plan_id = f"p-{unique_id}"
    under, over = f"c-under-{unique_id}", f"c-over-{unique_id}"
    at = dt.datetime(2027, 3, 10, 12, tzinfo=dt.UTC)
    client = warehouse.connect(chdb_url, database=settings.clickhouse_database)
    with ExitStack() as stack:
        start_group_at_end(kafka_bootstrap, settings.consumer_group, (*INGEST_TOPICS, PLANNING))
        replicas = start_replicas(stack, serve_app, apps)
        stack.callback(client.close)
        wait_until(
            lambda: sum(app.state.leadership.leading for app in apps) == 1,
            what="one replica to lead the monitor",
        )
        with EventPublisher(kafka_bootstrap, source="test") as events:
            for campaign_id, leads in ((under, 20), (over, 80)):
                events.publish(
                    CampaignPlanned(
                        campaign_id=campaign_id,
                        plan_id=plan_id,
                        name=campaign_id,
                        channel="search",
                        owner="ann",
                        budget=Decimal("10000"),
                        currency="USD",
                        start_date=dt.date(2027, 3, 1),
                        end_date=dt.date(2027, 3, 31),
                        status="active",
                    )
                )
                events.publish(
                    KpiTargetSet(
                        target_id=f"t-{campaign_id}",
                        campaign_id=campaign_id,
                        kpi="cpl",
                        target=Decimal("50"),
                        direction="lower_is_better",
                    )
                )
                for _ in range(4):  # keyed by campaign: one partition, one replica
                    events.publish(
                        SpendRecorded(
                            campaign_id=campaign_id,
                            channel="search",
                            amount=Decimal("500"),
                            currency="USD",
                        ),
                        occurred_at=at,
                    )
                for index in range(leads):  # keyed by lead: every partition, both replicas
                    events.publish(
                        LeadStageChanged(
                            lead_id=f"{campaign_id}-l{index}",
                            campaign_id=campaign_id,
                            channel="search",
                            stage="lead",
                        ),
                        occurred_at=at,
                    )

        # CPL 2,000 / 20 = 100 against 50: breached; 2,000 / 80 = 25: met → CKPI 50 and 150
        def stored(leads: int) -> Callable[[], bool]:
            def check() -> bool:
                rows = client.query(
                    """SELECT count() FROM lead_events FINAL
                    WHERE campaign_id IN {ids:Array(String)}""",
                    parameters={"ids": [under, over]},
                ).result_rows
                return rows[0][0] == leads

            return check

        mine = containing(plan_id)
        wait_until(stored(100), what="every event in ClickHouse")
        wait_until(
            _monitor_passed(client, MONITOR_JOBS), what="the monitor's jobs to pass the last change"
        )
        topic_reader(kafka_bootstrap, KPI, match=mine, expect=4)  # breach, proposal, 2 snapshots
        first = Publishes.of(read_to_end(kafka_bootstrap, KPI, match=mine))

        # the leader goes away: the other replica leads on from the saved marks. It ingests
        # the leads of its own partitions at once (those of the other's once the group has
        # rebalanced): with ~200 / 3 of them the 20 leads become 60 or more, CPL at most 33
        leader = _stop_leader(apps, replicas)
        with EventPublisher(kafka_bootstrap, source="test") as events:
            for index in range(20, 220):
                events.publish(
                    LeadStageChanged(
                        lead_id=f"{under}-l{index}",
                        campaign_id=under,
                        channel="search",
                        stage="lead",
                    ),
                    occurred_at=at,
                )
        recovered = topic_reader(
            kafka_bootstrap,
            KPI,
            match=lambda record: mine(record) and b'"kpi.target_recovered"' in record.value,
            expect=1,
            timeout_s=60,
        )
        assert recovered and apps[1 - leader].state.leadership.leading
        wait_until(
            _monitor_passed(client, MONITOR_JOBS),
            what="the new leader's jobs to pass the recovery",
        )

    published = Publishes.of(read_to_end(kafka_bootstrap, KPI, match=mine))
    assert published.duplicates() == {}
    assert first.duplicates() == {} and len(first.of_type("kpi.target_recovered")) == 0
    breaches = published.of_type("kpi.target_breached")
    assert breaches.per("campaign_id", "target_id") == {(under, f"t-{under}"): 1}
    recoveries = published.of_type("kpi.target_recovered")
    assert recoveries.per("campaign_id", "target_id") == {(under, f"t-{under}"): 1}
    proposals = published.of_type("budget.reallocation_proposed")
    assert proposals.per("from_campaign_id", "to_campaign_id") == {(under, over): 1}
    snapshots = published.of_type("kpi.snapshot")
    per_round = snapshots.per("campaign_id", "as_of")
    assert set(per_round.values()) == {1}, per_round  # one per campaign and round
    assert {campaign_id for campaign_id, _ in per_round} == {under, over}
    assert len(snapshots) > len(first.of_type("kpi.snapshot"))  # the new leader's round


def test_measurement_two_replicas_announce_sales_risk_and_discount_breaches_once_per_cause(
    kafka_bootstrap: str, chdb_url: str, serve_app, tmp_path, unique_id: str
) -> None:  # type: ignore[no-untyped-def]
    """Two replicas ingest a sales-target tree, a plan with a promo fund and a maximum rate,
    and sales spread over every partition: one ``sales_target.at_risk`` per episode, one
    ``discount.threshold_crossed`` per threshold and one ``discount.limit_exceeded`` per sale
    over the rate. Then the leader stops: the other leads on with one recovery, the 100 %
    crossing, the next sale over the rate and a new episode, and nothing of the first part
    again."""
    settings = _measurement_settings(
        kafka_bootstrap,
        chdb_url,
        tmp_path,
        unique_id,
        sales_target_interval_s=0.2,
        sales_at_risk_min_elapsed=Decimal(0),  # a target of the running month is judged at once
    )
    apps = [measurement_app(settings) for _ in range(2)]
    plan_id, campaign_id = f"p-{unique_id}", f"c-{unique_id}"
    rep_code, east_code, west_code = f"rep-{unique_id}", f"east-{unique_id}", f"west-{unique_id}"
    rep_target, west_target = f"st-rep-{unique_id}", f"st-west-{unique_id}"
    today = dt.datetime.now(dt.UTC).date()
    first_day = today.replace(day=1)
    last_day = (first_day + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
    out_of_reach = Decimal("1000000000000")  # no run rate of these sales gets near it

    def unit(name: str, kind: str, parent: str | None, code: str | None) -> SalesUnitSet:
        return SalesUnitSet(
            unit_id=f"u-{name}-{unique_id}",
            parent_id=f"u-{parent}-{unique_id}" if parent else None,
            kind=kind,  # type: ignore[arg-type]
            name=name,
            owner="ann",
            code=code,
        )

    def target(target_id: str, unit_name: str, amount: Decimal, version: int) -> SalesTargetSet:
        return SalesTargetSet(
            target_id=target_id,
            unit_id=f"u-{unit_name}-{unique_id}",
            period=f"{first_day:%Y-%m}",
            period_start=first_day,
            period_end=last_day,
            amount=amount,
            currency="USD",
            set_by="root",
            version=version,
        )

    def sale(order: str, amount: str, discount: str, *, region: str) -> SaleCompleted:
        return SaleCompleted(
            order_id=f"{order}-{unique_id}",
            customer_id=f"k-{order}-{unique_id}",  # keyed by customer: every partition
            campaign_id=campaign_id if region == east_code else None,
            channel="retail",
            amount=Decimal(amount),
            discount_amount=Decimal(discount),
            list_price=Decimal(amount) + Decimal(discount),
            currency="USD",
            rep_id=rep_code if region == east_code else None,
            region=region,
            discount_reason="spring promo",
        )

    units = [
        unit("company", "company", None, None),
        unit("east", "region", "company", east_code),
        unit("rep", "rep", "east", rep_code),
        unit("west", "region", "company", west_code),
    ]
    mine = containing(unique_id)
    client = warehouse.connect(chdb_url, database=settings.clickhouse_database)
    with ExitStack() as stack:
        start_group_at_end(kafka_bootstrap, settings.consumer_group, (*INGEST_TOPICS, PLANNING))
        replicas = start_replicas(stack, serve_app, apps)
        stack.callback(client.close)
        wait_until(
            lambda: sum(app.state.leadership.leading for app in apps) == 1,
            what="one replica to lead the monitor",
        )
        events = stack.enter_context(EventPublisher(kafka_bootstrap, source="test"))
        events.publish(
            PlanCreated(
                plan_id=plan_id,
                name="Replicas",
                period_start=first_day,
                period_end=last_day,
                currency="USD",
                owner="ann",
            )
        )
        events.publish(
            CampaignPlanned(
                campaign_id=campaign_id,
                plan_id=plan_id,
                name=campaign_id,
                channel="retail",
                owner="ann",
                budget=Decimal("10000"),
                currency="USD",
                start_date=first_day,
                end_date=last_day,
                status="active",
            )
        )
        events.publish(
            DiscountLimitSet(
                scope_kind="plan",
                scope_id=plan_id,
                plan_id=plan_id,
                promo_fund=Decimal("1000"),
                max_discount_rate=Decimal("0.2"),
                currency="USD",
            )
        )
        for sales_unit in units:
            events.publish(sales_unit)
        # the rep's target is out of reach; the west region has sold nothing yet
        events.publish(target(rep_target, "rep", out_of_reach, 1))
        events.publish(target(west_target, "west", Decimal("1000"), 1))
        events.flush()

        def planning_stored() -> bool:
            limits = discount_tables.plan_limits(client, plan_id=plan_id)
            running = sales_targets.targets_running(client, on=today)
            known = {u.unit_id for u in sales_targets.sales_units(client)}
            return (
                bool(limits.limits)
                and campaign_id in limits.line_of
                and {t.target_id for t in running} == {rep_target, west_target}
                and known == {u.unit_id for u in units}
            )

        # a limit applies from the next sale of the plan's campaigns: it is stored first
        wait_until(planning_stored, what="the plan, its limit and the sales targets stored")
        # rates 0.1, 0.3 (over 0.2 by 100.00), 0.2 (at the limit): 800 of 1,000 used
        for order, amount, discount in (("o1", "900", "100"), ("o2", "700", "300")):
            events.publish(sale(order, amount, discount, region=east_code))
        events.publish(sale("o3", "1600", "400", region=east_code))
        events.flush()
        _wait_for_discounts(client, campaign_id, sales=3)
        _wait_for_publishes(kafka_bootstrap, mine, {"sales_target.at_risk": 2})
        wait_until(
            _risk_saved(client, {rep_target: True, west_target: True}),
            what="both at-risk states saved",
        )
        first = Publishes.of(read_to_end(kafka_bootstrap, KPI, match=mine))

        leader = _stop_leader(apps, replicas)
        # 1,050 of 1,000 used, o4's rate 0.25 (over by 50.00); the west region sells its target
        events.publish(sale("o4", "750", "250", region=east_code))
        events.publish(sale("o5", "2000", "0", region=west_code))
        events.flush()
        _wait_for_discounts(client, campaign_id, sales=4)
        _wait_for_publishes(kafka_bootstrap, mine, {"sales_target.recovered": 1})
        wait_until(_risk_saved(client, {west_target: False}), what="the recovery saved")
        assert apps[1 - leader].state.leadership.leading
        # the west region's target raised out of reach: a new episode
        events.publish(target(west_target, "west", out_of_reach, 2))
        events.flush()
        _wait_for_publishes(kafka_bootstrap, mine, {"sales_target.at_risk": 3})
        wait_until(_risk_saved(client, {west_target: True}), what="the new episode saved")

    published = Publishes.of(read_to_end(kafka_bootstrap, KPI, match=mine))
    assert published.duplicates() == {}
    assert first.duplicates() == {}
    assert first.of_type("sales_target.recovered").records == []
    assert first.of_type("sales_target.at_risk").per("target_id") == {
        (rep_target,): 1,
        (west_target,): 1,
    }
    assert first.of_type("discount.limit_exceeded").per("order_id") == {(f"o2-{unique_id}",): 1}
    at_risk = published.of_type("sales_target.at_risk")
    assert Counter(
        (r["data"]["target_id"], Decimal(r["data"]["target"])) for r in at_risk.records
    ) == {
        (rep_target, out_of_reach): 1,
        (west_target, Decimal("1000")): 1,
        (west_target, out_of_reach): 1,
    }
    recovered = published.of_type("sales_target.recovered")
    assert recovered.per("target_id") == {(west_target,): 1}
    assert Decimal(recovered.records[0]["data"]["sales"]) == Decimal("2000")
    crossed = published.of_type("discount.threshold_crossed")
    assert crossed.per("scope_kind", "scope_id", "threshold") == {
        ("plan", plan_id, 80): 1,
        ("plan", plan_id, 100): 1,
    }
    assert first.of_type("discount.threshold_crossed").per("threshold") == {(80,): 1}
    assert {Decimal(r["data"]["used"]) for r in crossed.records} == {Decimal(800), Decimal(1050)}
    exceeded = published.of_type("discount.limit_exceeded")
    assert {
        r["data"]["order_id"]: (Decimal(r["data"]["rate"]), Decimal(r["data"]["amount_over"]))
        for r in exceeded.records
    } == {
        f"o2-{unique_id}": (Decimal("0.3"), Decimal("100")),
        f"o4-{unique_id}": (Decimal("0.25"), Decimal("50")),
    }
    assert exceeded.per("order_id") == {(f"o2-{unique_id}",): 1, (f"o4-{unique_id}",): 1}


def _measurement_settings(
    kafka_bootstrap: str, chdb_url: str, tmp_path: Path, unique_id: str, **overrides: Any
) -> MeasurementSettings:
    """Settings shared by a test's measurement replicas: the test's own database and consumer
    groups, and a monitor evaluating every 0.2 s; ``overrides`` set the rest."""
    return MeasurementSettings(
        kafka_bootstrap=kafka_bootstrap,
        clickhouse_url=chdb_url,
        clickhouse_database=f"replicas_{unique_id}",
        data_dir=tmp_path,
        tokens={"t-viewer": {"subject": "vic", "role": "viewer"}},
        consumer_group=f"mrm-measurement-{unique_id}",
        monitor_group=f"mrm-measurement-monitor-{unique_id}",
        evaluate_interval_s=0.2,
        **overrides,
    )


def _monitor_passed(client: Client, jobs: Sequence[str]) -> Callable[[], bool]:
    """Whether the monitor's ``jobs`` have saved marks past every change stored by now."""
    stored_by = alerts.settled_bound(client) + alerts.SETTLE_MS

    def check() -> bool:
        marks = [alerts.read_mark(client, job=job) for job in jobs]
        return all(mark is not None and mark >= stored_by for mark in marks)

    return check


def _stop_leader(apps: Sequence[Any], replicas: Sequence[Any]) -> int:
    """Stop the replica leading the monitor (after its round in flight); return its index."""
    leader = next(n for n, app in enumerate(apps) if app.state.leadership.leading)
    replicas[leader].__exit__(None, None, None)
    return leader


def _wait_for_discounts(client: Client, campaign_id: str, *, sales: int) -> None:
    """Wait for ``sales`` discounted sales of the campaign in ClickHouse, then for the discount
    checks to pass them (their events are published before the mark moves)."""
    wait_until(
        lambda: len(discount_tables.discounted_sales(client, campaign_ids=[campaign_id])) == sales,
        what=f"{sales} discounted sales stored",
    )
    wait_until(_monitor_passed(client, ("discounts",)), what="the discount checks to pass them")


def _wait_for_publishes(
    bootstrap: str, match: Callable[[Any], bool], wanted: Mapping[str, int]
) -> None:
    """Wait until ``mrm.kpi.v1`` holds at least ``wanted`` matching records of each type."""

    def enough() -> bool:
        published = Publishes.of(read_to_end(bootstrap, KPI, match=match))
        return all(len(published.of_type(kind)) >= n for kind, n in wanted.items())

    wait_until(enough, what=f"{dict(wanted)} on {KPI}")


def _risk_saved(client: Client, wanted: Mapping[str, bool]) -> Callable[[], bool]:
    """Whether each sales target's saved risk state (target_id → at risk) is as ``wanted``."""
    subjects = {sales_watch.subject_of(target_id): on for target_id, on in wanted.items()}

    def check() -> bool:
        stored = alerts.alert_states_of(client, subjects=list(subjects))
        return all(
            [state.on for state in stored.get(subject, {}).values()] == [on]
            for subject, on in subjects.items()
        )

    return check


@POSTGRES
def test_execution_two_replicas_remind_and_flag_each_stage_once(
    kafka_bootstrap: str, database_url: str, serve_app, topic_reader, tmp_path, unique_id: str
) -> None:  # type: ignore[no-untyped-def]
    """Both replicas' schedulers tick every 0.2 s over the same stages: one reminder per
    approaching deadline, one overdue flag per passed one, one overspend forecast."""
    settings = ExecutionSettings(
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url,
        consumer_group=f"mrm-execution-{unique_id}",  # no replica of an earlier test to outwait
        data_dir=tmp_path,
        scheduler_interval_s=0.2,
    )
    now = dt.datetime.now(dt.UTC)
    today = now.date()
    campaigns = [f"c{n}-{unique_id}" for n in range(6)]  # keys spread over the partitions
    stages: dict[str, str] = {}  # stage_id → the event it is due
    engine = make_engine(database_url)
    with ExitStack() as stack:
        start_group_at_end(kafka_bootstrap, settings.consumer_group, (PLANNING, SPEND, TASKS))
        start_replicas(stack, serve_app, [execution_app(settings) for _ in range(2)])
        with EventPublisher(kafka_bootstrap, source="test") as events:
            for campaign_id in campaigns:
                events.publish(
                    CampaignPlanned(
                        campaign_id=campaign_id,
                        plan_id=f"p-{unique_id}",
                        name=campaign_id,
                        channel="search",
                        owner="ann",
                        budget=Decimal("1000"),
                        currency="USD",
                        start_date=today - dt.timedelta(days=10),
                        end_date=today + dt.timedelta(days=20),
                        status="active",
                    )
                )
                for n in range(8):
                    late = n % 2 == 1
                    stage_id = f"s{n}-{campaign_id}"
                    stages[stage_id] = "stage.overdue" if late else "stage.deadline_approaching"
                    events.publish(
                        StageScheduled(
                            stage_id=stage_id,
                            campaign_id=campaign_id,
                            name=f"Stage {n}",
                            deadline=now + dt.timedelta(hours=-5 if late else 5),
                            assignee="ann",
                        )
                    )
            # 900 of 1,000 after a third of the period: forecast 2,700, flagged once
            events.publish(
                SpendRecorded(
                    campaign_id=campaigns[0],
                    channel="search",
                    amount=Decimal("900"),
                    currency="USD",
                )
            )

        Stage, Campaign = execution_store.Stage, execution_store.Campaign

        def all_flagged_and_published() -> bool:
            with engine.connect() as connection:
                flagged = connection.execute(
                    select(func.count())
                    .select_from(Stage)
                    .where(
                        Stage.stage_id.in_(list(stages)),
                        or_(Stage.warned_for.is_not(None), Stage.overdue_for.is_not(None)),
                    )
                ).scalar_one()
                forecast = connection.execute(
                    select(Campaign.overspend_flagged).where(Campaign.campaign_id == campaigns[0])
                ).scalar_one_or_none()
            return (
                flagged == len(stages)
                and bool(forecast)
                and unpublished(engine, execution_store.MESSAGING.outbox) == 0
            )

        wait_until(all_flagged_and_published, what="every stage flagged and published")
        mine = containing(unique_id)
        topic_reader(kafka_bootstrap, EXECUTION, match=mine, expect=len(stages) + 2)
    engine.dispose()

    published = Publishes.of(read_to_end(kafka_bootstrap, EXECUTION, match=mine))
    assert published.duplicates() == {}
    for event_type in ("stage.deadline_approaching", "stage.overdue"):
        due = {stage_id for stage_id, due in stages.items() if due == event_type}
        assert published.of_type(event_type).per("stage_id") == {(s,): 1 for s in due}
    assert published.of_type("budget.overspend_forecast").per("campaign_id") == {(campaigns[0],): 1}
    assert published.of_type("budget.threshold_crossed").per("threshold_pct") == {(80,): 1}


@POSTGRES
def test_notifier_two_replicas_send_one_email_per_cause(
    kafka_bootstrap: str, database_url: str, serve_app, topic_reader, tmp_path, unique_id: str
) -> None:  # type: ignore[no-untyped-def]
    """Ten breach alerts (each published twice with its event id) and one that waits for its
    campaign: eleven e-mails, one per cause, though the SMTP server refuses the first three
    attempts (retried by whichever replica leases them) and both replicas deliver."""
    owner = f"ann-{unique_id}"
    plan_id = f"p-{unique_id}"
    campaigns = [f"c{n}-{unique_id}" for n in range(10)]
    waiting = f"c-waiting-{unique_id}"
    settings_of = dict(
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url,
        data_dir=tmp_path,
        consumer_group=f"mrm-notifier-{unique_id}",
        tokens={"t-admin": {"subject": "root", "role": "admin"}},
        max_attempts=6,
        retry_initial_s=0.2,
        poll_interval_s=0.1,
    )
    engine = make_engine(database_url)
    Notification, Parked = notifier_store.NotificationRow, notifier_store.ParkedCauseRow

    def count(query) -> int:  # type: ignore[no-untyped-def]
        with engine.connect() as connection:
            return connection.execute(query).scalar_one()

    def planned(campaign_id: str) -> CampaignPlanned:
        return CampaignPlanned(
            campaign_id=campaign_id,
            plan_id=plan_id,
            name=campaign_id,
            channel="search",
            owner=owner,
            budget=Decimal("1000"),
            currency="USD",
            start_date=dt.date(2027, 3, 1),
            end_date=dt.date(2027, 3, 31),
        )

    def breach(campaign_id: str) -> KpiTargetBreached:
        return KpiTargetBreached(
            campaign_id=campaign_id,
            plan_id=plan_id,
            target_id=f"t-{campaign_id}",
            kpi="cpl",
            target=Decimal("50"),
            actual=Decimal("100"),
            direction="lower_is_better",
        )

    with ExitStack() as stack:
        smtp = stack.enter_context(FlakySmtp(failures=3))
        settings = NotifierSettings(**settings_of, smtp_host=smtp.host, smtp_port=smtp.port)
        start_group_at_end(kafka_bootstrap, settings.consumer_group, (PLANNING, EXECUTION, KPI))
        replicas = start_replicas(stack, serve_app, [notifier_app(settings) for _ in range(2)])
        registered = httpx.put(
            f"{replicas[1].url}/api/v1/recipients/{owner}",
            json={"email": f"{owner}@example.com", "channels": ["email"]},
            headers=ADMIN,
            timeout=30,
        )
        assert registered.status_code == 201, registered.text
        events = stack.enter_context(EventPublisher(kafka_bootstrap, source="test"))
        events.publish(
            PlanCreated(
                plan_id=plan_id,
                name="Replicas",
                period_start=dt.date(2027, 1, 1),
                period_end=dt.date(2027, 12, 31),
                currency="USD",
                owner=owner,
            )
        )
        for campaign_id in campaigns:
            events.publish(planned(campaign_id))
        events.flush()
        wait_until(
            lambda: (
                count(
                    select(func.count())
                    .select_from(notifier_store.CampaignRow)
                    .where(notifier_store.CampaignRow.campaign_id.in_(campaigns))
                )
                == len(campaigns)
            ),
            what="the directory to know the campaigns",
        )
        causes = [new_envelope(breach(c), source="measurement") for c in campaigns]
        for envelope in causes:  # each cause twice: a repeated publish of one event id
            for _ in range(2):
                events.send_envelope(envelope, topic=KPI, key=envelope.data["campaign_id"])
        late = events.publish(breach(waiting))
        events.flush()
        wait_until(
            lambda: (
                count(
                    select(func.count())
                    .select_from(Parked)
                    .where(Parked.event_id == str(late.event_id))
                )
                == 1
            ),
            what="the cause of an unknown campaign to be parked",
        )
        events.publish(planned(waiting))
        events.flush()
        cause_ids = [str(envelope.event_id) for envelope in (*causes, late)]

        def all_delivered() -> bool:
            delivered = count(
                select(func.count())
                .select_from(Notification)
                .where(
                    Notification.cause_event_id.in_(cause_ids),
                    Notification.status == "delivered",
                )
            )
            return delivered == len(cause_ids) and (
                unpublished(engine, notifier_store.MESSAGING.outbox) == 0
            )

        wait_until(all_delivered, what="every notification delivered and published")
        mine = containing(*cause_ids)
        topic_reader(kafka_bootstrap, NOTIFICATIONS, match=mine, expect=len(cause_ids))
        received = smtp.received()
        assert smtp.refused == 3
    engine.dispose()

    assert len(received) == len(cause_ids)  # one e-mail per cause
    assert len({message["Message-ID"] for message in received}) == len(cause_ids)
    subjects = " ".join(str(message["Subject"]) + message.get_content() for message in received)
    assert all(subjects.count(campaign_id) >= 1 for campaign_id in (*campaigns, waiting))
    published = Publishes.of(read_to_end(kafka_bootstrap, NOTIFICATIONS, match=mine))
    assert published.duplicates() == {}
    delivered = published.of_type("notification.delivered")
    assert delivered.per("cause_event_id") == {(cause,): 1 for cause in cause_ids}


def test_two_outbox_relays_publish_each_row_once_in_order(
    kafka_bootstrap: str, database_url: str, unique_id: str
) -> None:
    """The relay alone, on SQLite (time lease) and PostgreSQL (row lock): two relays over one
    outbox publish every row once, each key's rows in order; when the relay holding the turn
    stops, the other publishes what comes next at once (a stopping relay gives its lease back,
    it is not waited out)."""
    metadata = MetaData()
    tables = define_messaging_tables(metadata, prefix=f"relay_{unique_id}")
    engines = [make_engine(database_url) for _ in range(2)]
    metadata.create_all(engines[0])
    keys = [f"k{n}-{unique_id}" for n in range(5)]

    def queue(first: int, count: int) -> None:
        with Session(engines[0]) as session, session.begin():
            for n in range(first, first + count):
                data = KpiSnapshot(
                    campaign_id=keys[n % len(keys)],
                    as_of=dt.datetime(2027, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=n),
                    kpis={},
                )
                envelope = new_envelope(data, source="test")
                add_to_outbox(session, tables, envelope=envelope, topic=KPI, key=data.key())

    async def relay_both() -> None:
        brokers = [make_broker(kafka_bootstrap, client_id=f"relay-{n}") for n in range(2)]
        relays = [
            OutboxRelay(
                engine=engine,
                tables=tables,
                broker=broker,
                metrics=ServiceMetrics(f"relay_{n}"),
                poll_interval_s=0.1,
                batch_size=50,
            )
            for n, (engine, broker) in enumerate(zip(engines, brokers, strict=True))
        ]
        for broker in brokers:
            await broker.start()
        tasks = [asyncio.create_task(relay.run()) for relay in relays]

        async def drained() -> None:
            while unpublished(engines[0], tables.outbox):
                await asyncio.sleep(0.05)

        try:
            await asyncio.wait_for(drained(), timeout=60)
            # stop one relay (the lease holder on SQLite): the other takes over at once
            holder = next(
                (n for n, relay in enumerate(relays) if _holds_lease(engines[0], tables, relay)),
                0,
            )
            tasks[holder].cancel()
            await asyncio.gather(tasks[holder], return_exceptions=True)
            queue(400, 100)
            relays[1 - holder].wake()
            await asyncio.wait_for(drained(), timeout=10)  # well within the 30 s lease
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for broker in brokers:
                await broker.stop()

    queue(0, 400)
    asyncio.run(relay_both())
    for engine in engines:
        engine.dispose()

    published = Publishes.of(read_to_end(kafka_bootstrap, KPI, match=containing(*keys)))
    assert published.duplicates() == {}
    assert len(published) == 500
    for key in keys:
        as_of = [r["data"]["as_of"] for r in published.records if r["data"]["campaign_id"] == key]
        assert len(as_of) == 100 and as_of == sorted(as_of), key


def _holds_lease(engine, tables, relay: OutboxRelay) -> bool:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        holder = connection.execute(select(tables.lease.c.holder)).scalar_one_or_none()
    return holder == relay.holder


async def test_a_leader_gives_up_its_turn_only_after_the_round_in_flight() -> None:
    """The rebalance waits for the round (so the next leader starts after it); a round asked
    for meanwhile is refused."""
    leadership = Leadership(bootstrap="unused", topic="t", group_id="g", client_id="c")
    listener = _Listener(leadership)
    await listener.on_partitions_assigned({TopicPartition("t", 0)})
    assert leadership.leading and leadership.term == 1
    in_round, release = asyncio.Event(), asyncio.Event()

    async def round_of_work() -> None:
        async with leadership.turn() as term:
            assert term == 1
            in_round.set()
            await release.wait()

    work = asyncio.create_task(round_of_work())
    await in_round.wait()
    revoking = asyncio.create_task(listener.on_partitions_revoked({TopicPartition("t", 0)}))
    await asyncio.sleep(0.05)
    assert not revoking.done() and not leadership.leading
    async with leadership.turn() as term:
        assert term is None  # no new round once leadership is being given up
    release.set()
    await asyncio.wait_for(asyncio.gather(work, revoking), timeout=5)
    await listener.on_partitions_assigned({TopicPartition("t", 1)})
    assert not leadership.leading  # only partition 0 leads


@POSTGRES
def test_a_parked_cause_is_released_by_one_transaction(database_url: str, unique_id: str) -> None:
    """A handler and another replica's sweep release one campaign's parked causes at once: the
    second waits on the first's row lock and then gets nothing (it used to read the row before
    the first committed, and notified the cause again)."""
    engine = make_engine(database_url)
    notifier_store.create_schema(engine)
    key = notifier_domain.WaitKey(kind="campaign", identifier=f"c-{unique_id}")
    cause = new_envelope(
        KpiTargetBreached(
            campaign_id=key.identifier,
            target_id="t",
            kpi="cpl",
            target=Decimal("50"),
            actual=Decimal("100"),
            direction="lower_is_better",
        ),
        source="measurement",
    )
    with Session(engine) as session, session.begin():
        notifier_store.park_cause(
            session=session, envelope=cause, waits_for=key, now=dt.datetime.now(dt.UTC)
        )
    second: list = []

    def take_in_another_transaction() -> None:
        with Session(engine) as session, session.begin():
            second.extend(notifier_store.take_parked(session=session, waits_for=key))

    with Session(engine) as session, session.begin():
        first = notifier_store.take_parked(session=session, waits_for=key)
        other = threading.Thread(target=take_in_another_transaction)
        other.start()
        holder = session.connection().execute(text("SELECT pg_backend_pid()")).scalar_one()

        def blocked() -> int:  # asked on a connection of its own: a transaction caches the view
            with engine.connect() as connection:
                return connection.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE CAST(:holder AS integer) = ANY(pg_blocking_pids(pid))"
                    ),
                    {"holder": holder},
                ).scalar_one()

        wait_until(blocked, what="the second release to wait for the first")
    other.join(timeout=30)
    engine.dispose()
    assert [envelope.event_id for envelope in first] == [cause.event_id]
    assert second == []


@POSTGRES
def test_planning_two_replicas_publish_each_event_once(
    kafka_bootstrap: str, database_url: str, serve_app, topic_reader, tmp_path, unique_id: str
) -> None:  # type: ignore[no-untyped-def]
    """200 concurrent creates spread over two replicas: every event id on the topic once, and
    each campaign's events in the order they were written."""
    settings = PlanningSettings(
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url,
        consumer_group=f"mrm-planning-{unique_id}",
        tokens=TOKENS,
        data_dir=tmp_path,
        currency="EUR",
    )
    engine = make_engine(database_url)
    with ExitStack() as stack:
        start_group_at_end(kafka_bootstrap, settings.consumer_group, (KPI,))
        replicas = start_replicas(stack, serve_app, [planning_app(settings) for _ in range(2)])
        plan = httpx.post(
            f"{replicas[0].url}/api/v1/plans",
            json={"name": "Replicas", "period_start": "2027-01-01", "period_end": "2027-12-31"},
            headers=ADMIN,
            timeout=30,
        )
        assert plan.status_code == 201, plan.text
        plan_id = plan.json()["plan_id"]

        async def create_all() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=60, headers=ADMIN) as client:
                return await asyncio.gather(
                    *(
                        client.post(
                            f"{replicas[n % 2].url}/api/v1/plans/{plan_id}/campaigns",
                            json={
                                "name": f"Campaign {n}",
                                "channel": "search",
                                "owner": "ann",
                                "budget": "1000.00",
                                "start_date": "2027-03-01",
                                "end_date": "2027-05-31",
                            },
                        )
                        for n in range(200)
                    )
                )

        responses = asyncio.run(create_all())
        assert [r.status_code for r in responses] == [201] * 200, responses[0].text
        # plan.created and its default reallocation_rule.set, then campaign.planned +
        # budget.allocated for each campaign
        expected = 2 + 2 * 200

        mine = containing(plan_id)
        wait_until(
            lambda: unpublished(engine, PLANNING_MESSAGING.outbox) == 0,
            what="both relays to empty the outbox",
        )
        assert len(topic_reader(kafka_bootstrap, PLANNING, match=mine, expect=expected)) >= expected
    engine.dispose()

    published = Publishes.of(read_to_end(kafka_bootstrap, PLANNING, match=mine))
    assert published.duplicates() == {}
    assert len(published.event_ids) == expected
    assert len(published) == expected
    # one relay at a time publishes in outbox order: planned before allocated, per campaign
    by_campaign: dict[str, list[str]] = {}
    for record in published.records:
        if record["data"].get("campaign_id"):
            by_campaign.setdefault(record["data"]["campaign_id"], []).append(record["event_type"])
    assert len(by_campaign) == 200
    assert all(types == ["campaign.planned", "budget.allocated"] for types in by_campaign.values())
