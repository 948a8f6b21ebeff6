"""The embedded broker killed and started again, empty, on the same port while the platform
runs: /ready answers 503 at once, the topics come back with the configured partitions and their
DLQs, consumers do not skip, and execution's projection converges to planning's state."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import time
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka import KafkaBroker
from kafka.admin import KafkaAdminClient
from restart_kit import (
    PARTITIONS,
    create_campaign,
    progress,
    ready,
    running_platform,
    tag,
    wait_for,
)

from services.planning.budget import line_event
from services.planning.domain import CampaignFacts, PlanFacts, current_state
from shared.budget import LineFacts
from shared.consumer import EventConsumer
from shared.http import create_service_app, readiness_of
from shared.kafka import ensure_topics, make_broker, without_topic_autocreation
from shared.metrics import ServiceMetrics
from shared.topics import ALL_TOPICS, PLANNING, all_topics_with_dlq, dlq
from shared.watch import BrokerWatch, Subscription


def topic_shapes(bootstrap: str) -> dict[str, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return {t["name"]: len(t["partitions"]) for t in admin.describe_topics(admin.list_topics())}
    finally:
        admin.close()


def test_platform_survives_a_broker_restart(tmp_path: Path, topic_reader) -> None:  # type: ignore[no-untyped-def]
    with running_platform(tmp_path) as run, httpx.Client(timeout=10) as client:
        urls = run.urls
        seen = create_campaign(client, urls["planning"], tag=f"seen-{tag()}")
        wait_for(lambda: progress(client, urls["execution"], seen), timeout_s=30, what="seen")

        # execution does not consume the next campaign before the broker dies with it
        execution = run.pid("execution")
        os.kill(execution, signal.SIGSTOP)
        try:
            unseen = create_campaign(client, urls["planning"], tag=f"unseen-{tag()}")
            assert topic_reader(
                run.broker.bootstrap, PLANNING, match=lambda r: unseen.encode() in r.value, expect=1
            ), "planning did not publish the campaign"
            run.broker.kill()
            killed_at = time.monotonic()
        finally:
            os.kill(execution, signal.SIGCONT)

        # every /ready answers 503 within 2 s (the client gives up at 2 s: no hang)
        for name, url in urls.items():
            _status, checks = wait_for(
                lambda url=url: (answer := ready(url, timeout_s=2.0))[0] == 503 and answer,
                timeout_s=15,
                every_s=0.1,
                what=f"{name} /ready 503",
            )
            assert checks["kafka"] is False, (name, checks)
            print(f"{name}: /ready 503 {time.monotonic() - killed_at:.2f} s after the kill")

        run.broker.start()  # same port, empty
        for name, url in urls.items():
            wait_for(lambda url=url: ready(url)[0] == 200, timeout_s=60, what=f"{name} ready")

        shapes = topic_shapes(run.broker.bootstrap)
        assert {topic: shapes.get(topic) for topic in ALL_TOPICS} == dict.fromkeys(
            ALL_TOPICS, PARTITIONS
        )
        assert {dlq(topic): shapes.get(dlq(topic)) for topic in ALL_TOPICS} == {
            dlq(topic): 1 for topic in ALL_TOPICS
        }

        after = create_campaign(client, urls["planning"], tag=f"after-{tag()}")
        for campaign_id in (after, unseen, seen):
            found = wait_for(
                lambda cid=campaign_id: (
                    (p := progress(client, urls["execution"], cid)) and p["name"] and p
                ),
                timeout_s=60,
                what=f"campaign {campaign_id} in execution",
            )
            assert found["budget"] is not None and float(found["budget"]) == 1000
        assert all(run.platform.children[name].poll() is None for name in urls), run.messages
        assert run.pid("execution") == execution  # converged without a restart


async def test_lag_without_progress_shows_in_ready_and_metrics(
    kafka_bootstrap: str, unique_id: str
) -> None:
    topic = f"stall.{unique_id}"
    ensure_topics(kafka_bootstrap, [topic], partitions=1)
    metrics = ServiceMetrics("stalltest")
    broker = KafkaBroker(kafka_bootstrap, logger=None)
    consumer = EventConsumer(broker=broker, group_id=f"stall-{unique_id}", metrics=metrics)
    entered, release = asyncio.Event(), asyncio.Event()
    handled: list[int] = []

    async def stuck(records):  # type: ignore[no-untyped-def]
        entered.set()
        await release.wait()
        handled.extend(record.offset for record in records)

    consumer.on_raw_batch(topic, handler=stuck, max_records=5)
    watch = BrokerWatch(
        bootstrap=kafka_bootstrap,
        metrics=metrics,
        partitions=1,
        group_id=consumer.group_id,
        subscriptions=consumer.subscriptions,
        stall_after_s=1.5,
        topics=[topic],
    )
    app = create_service_app(
        service="stalltest", title="t", lifespan=_no_lifespan, metrics=metrics, tokens={}
    )
    app.state.readiness = readiness_of(consumer_progress=watch.progress_ready)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await broker.start()
    await producer.start()
    watching = asyncio.create_task(watch.run())
    try:
        for number in range(30):
            await producer.send_and_wait(topic, b"%d" % number)
        await asyncio.wait_for(entered.wait(), timeout=30)
        await _until(lambda: not watch.progress_ready(), timeout_s=20)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as http:
            answer = await http.get("/ready")
        assert answer.status_code == 503
        assert answer.json()["checks"] == {"consumer_progress": False}
        labels = {"service": "stalltest", "topic": topic}
        assert metrics.registry.get_sample_value("mrm_consumer_stalled_partitions", labels) == 1
        lag = metrics.registry.get_sample_value(
            "mrm_consumer_lag_messages", {"service": "stalltest", "topic": topic}
        )
        assert lag is not None and lag > 0

        release.set()
        await _until(watch.progress_ready, timeout_s=30)
        assert metrics.registry.get_sample_value("mrm_consumer_stalled_partitions", labels) == 0
        assert 0 in handled
    finally:
        release.set()
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        await producer.stop()
        await broker.stop()


async def test_service_clients_never_create_a_topic_by_asking_for_it(
    kafka_bootstrap: str, unique_id: str
) -> None:
    async def ask_about(topic: str) -> bool:
        """Whether the topic exists after a client asked the broker about it."""
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.describe_topics([topic])
            return topic in await admin.list_topics()
        finally:
            await admin.close()

    with without_topic_autocreation():
        assert not await ask_about(f"never.created.{unique_id}")
    assert await ask_about(f"auto.created.{unique_id}")  # aiokafka's default, elsewhere


class FakeConsumer:
    """What ``Subscription`` reads of an aiokafka consumer."""

    def __init__(self, *, position: int, highwater: int | None) -> None:
        self.tp = TopicPartition("mrm.planning.v1", 1)
        self._position, self._highwater = position, highwater
        self.sought: list[TopicPartition] = []

    def assignment(self) -> set[TopicPartition]:
        return {self.tp}

    def highwater(self, _tp: TopicPartition) -> int | None:
        return self._highwater

    async def position(self, _tp: TopicPartition) -> int:
        return self._position

    async def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.sought.append(tp)


@pytest.mark.parametrize(
    ("position", "highwater", "rewound"),
    [(7, 2, True), (2, 2, False), (1, 2, False), (7, None, False)],
)
async def test_a_position_past_the_end_is_sought_to_the_beginning(
    position: int, highwater: int | None, rewound: bool
) -> None:
    consumer = FakeConsumer(position=position, highwater=highwater)
    subscription = Subscription([PLANNING])
    subscription.bind(SimpleNamespace(consumer=consumer))
    assert await subscription.apply() == ([consumer.tp] if rewound else [])


async def test_a_reset_partition_is_rewound_once_per_assignment() -> None:
    consumer = FakeConsumer(position=1, highwater=5)
    subscription = Subscription([PLANNING])
    subscription.bind(SimpleNamespace(consumer=consumer))
    subscription.rewind([consumer.tp, TopicPartition("other", 0)], for_s=60)
    assert await subscription.apply() == [consumer.tp]
    assert await subscription.apply() == []  # done for this assignment
    await subscription.on_partitions_assigned({consumer.tp})  # a rebalance soon after a reset
    assert consumer.sought == [consumer.tp, consumer.tp]


async def _until(condition, *, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout_s} s")
        await asyncio.sleep(0.1)


def _no_lifespan(_app):  # type: ignore[no-untyped-def]
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def nothing():  # type: ignore[no-untyped-def]
        yield

    return nothing()


assert set(all_topics_with_dlq()) == {*ALL_TOPICS, *map(dlq, ALL_TOPICS)}


async def test_a_consumer_past_the_end_of_a_reset_topic_reads_it_again(
    kafka_bootstrap: str, unique_id: str
) -> None:
    topic = f"reset.{unique_id}"
    ensure_topics(kafka_bootstrap, [topic], partitions=1)
    metrics = ServiceMetrics("resettest")
    broker = make_broker(kafka_bootstrap, client_id="reset-test")
    consumer = EventConsumer(broker=broker, group_id=f"reset-{unique_id}", metrics=metrics)
    handled: list[bytes] = []

    async def record(records):  # type: ignore[no-untyped-def]
        handled.extend(record.value for record in records)

    consumer.on_raw_batch(topic, handler=record)
    watch = BrokerWatch(
        bootstrap=kafka_bootstrap,
        metrics=metrics,
        partitions=1,
        group_id=consumer.group_id,
        subscriptions=consumer.subscriptions,
        topics=[topic],
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await broker.start()
    await producer.start()
    await admin.start()
    watching = asyncio.create_task(watch.run())
    try:
        for number in range(10):
            await producer.send_and_wait(topic, b"old-%d" % number, partition=0)
        await _until(lambda: len(handled) == 10, timeout_s=30)

        await admin.delete_topics([topic])  # the broker loses the topic; the watch re-creates it
        await _until(lambda: watch._ends.get(TopicPartition(topic, 0)) == 0, timeout_s=20)
        for number in range(3):
            await producer.send_and_wait(topic, b"new-%d" % number, partition=0)
        # the three may come in more than one batch: wait for the last, then check none is missing
        await _until(lambda: b"new-2" in handled, timeout_s=30)
        assert [v for v in handled if v.startswith(b"new")] == [b"new-0", b"new-1", b"new-2"]
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        await admin.close()
        await producer.stop()
        await broker.stop()


def test_planning_state_is_told_again_without_repeating_notification_causes() -> None:
    plan = PlanFacts(
        plan_id="p1",
        name="FY",
        period_start=dt.date(2026, 1, 1),
        period_end=dt.date(2026, 12, 31),
        currency="USD",
        owner="ann",
        status="approved",
    )
    campaign = CampaignFacts(
        campaign_id="c1",
        plan_id="p1",
        name="Search",
        channel="search",
        owner="ann",
        budget=Decimal("900"),
        currency="USD",
        start_date=dt.date(2026, 2, 1),
        end_date=dt.date(2026, 3, 1),
        status="active",
        version=4,
    )
    line = line_event(
        LineFacts(line_id="l1", plan_id="p1", name="Brand A", amount=Decimal("1000")),
        currency="USD",
    )
    events = current_state(plans=[plan], campaigns=[campaign], lines=[line], stages=[], targets=[])
    assert [type(e).__name__ for e in events] == [
        "PlanCreated",
        "BudgetLineSet",
        "CampaignPlanned",
        "BudgetAllocated",
    ]
    created, _, planned, allocated = events
    assert created.status == "approved"  # type: ignore[attr-defined]
    assert (planned.version, planned.status, planned.budget) == (4, "active", Decimal("900"))  # type: ignore[attr-defined]
    assert (allocated.amount, allocated.version) == (Decimal("900"), 4)  # type: ignore[attr-defined]
