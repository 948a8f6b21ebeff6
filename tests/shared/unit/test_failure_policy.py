"""The failure policy of the consumer kit, on FastStream's in-memory test broker: data errors are
dead-lettered at once, outages retried in place, other errors retried a bounded number of
times; a bad message never makes a batch replay; replays for another group are skipped."""

from __future__ import annotations

import asyncio
import decimal
import sqlite3
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import aiokafka.errors
import pytest
from faststream.kafka import KafkaBroker, KafkaMessage, TestKafkaBroker
from pydantic import BaseModel, ValidationError
from sqlalchemy import exc as sql

from shared import dlq, topics
from shared.consumer import Backoff, Consumed, EventConsumer, Rejected
from shared.events import new_envelope
from shared.events.ingest import SpendRecorded
from shared.failures import Failure, classify, reason_of
from shared.metrics import ServiceMetrics

FAST = Backoff(initial_s=0.001, maximum_s=0.002)


async def wait_until(predicate: Any, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def spend(campaign: str, amount: str = "1.00") -> bytes:
    data = SpendRecorded(
        campaign_id=campaign, channel="search", amount=Decimal(amount), currency="USD"
    )
    return new_envelope(data, source="test").to_bytes()


class _Bounded(BaseModel):
    n: int


def _validation_error() -> ValidationError:
    try:
        _Bounded.model_validate({"n": "x"})
    except ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (Rejected("data.currency: no rate"), Failure.DATA),
        (_validation_error(), Failure.DATA),
        (decimal.InvalidOperation(), Failure.DATA),
        (sql.DataError("INSERT", {}, Exception("value out of range")), Failure.DATA),
        (sql.IntegrityError("INSERT", {}, sqlite3.IntegrityError("NOT NULL failed")), Failure.DATA),
        (
            sql.IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed")),
            Failure.UNKNOWN,
        ),
        (sql.OperationalError("SELECT", {}, Exception("server closed")), Failure.OUTAGE),
        (sql.InterfaceError("SELECT", {}, Exception("closed")), Failure.OUTAGE),
        (ConnectionRefusedError(), Failure.OUTAGE),
        (TimeoutError(), Failure.OUTAGE),
        (aiokafka.errors.KafkaConnectionError(), Failure.OUTAGE),
        (aiokafka.errors.NotLeaderForPartitionError(), Failure.OUTAGE),
        (aiokafka.errors.MessageSizeTooLargeError(), Failure.DATA),
        (RecursionError(), Failure.DATA),
        (KeyError("x"), Failure.UNKNOWN),
        (RuntimeError("boom"), Failure.UNKNOWN),
    ],
)
def test_failures_are_sorted(error: BaseException, kind: Failure) -> None:
    assert classify(error) is kind


def test_a_service_rule_comes_first_and_reasons_name_the_error() -> None:
    assert classify(KeyError("x"), extra=[lambda exc: Failure.DATA]) is Failure.DATA
    assert classify(KeyError("x"), extra=[lambda exc: None]) is Failure.UNKNOWN
    assert reason_of(Rejected("data.amount: too big")) == "data.amount: too big"
    assert reason_of(RuntimeError("boom")) == "RuntimeError: boom"
    assert reason_of(_validation_error()).startswith("data.n: ")


class Harness:
    """A consumer on the test broker with its dead letters collected."""

    def __init__(self, **options: Any) -> None:
        self.broker = KafkaBroker("localhost:9092")
        self.metrics = ServiceMetrics("unit")
        self.consumer = EventConsumer(
            broker=self.broker, group_id="g-unit", metrics=self.metrics, backoff=FAST, **options
        )
        self.dead: list[tuple[bytes, dict[str, str]]] = []

        @self.broker.subscriber(topics.dlq(topics.SPEND))
        async def collect(msg: KafkaMessage) -> None:
            self.dead.append((msg.body, msg.headers))

    def failures(self, kind: Failure) -> float:
        return self.metrics.consumer_failures.labels(
            topic=topics.SPEND, kind=kind.value
        )._value.get()


async def test_per_message_progress_is_kept_and_bad_messages_dead_lettered_once() -> None:
    harness = Harness(max_attempts=3)
    calls: dict[str, int] = {}
    flaky = {"left": 2}

    async def on_spend(consumed: Consumed) -> None:
        campaign = consumed.data.campaign_id  # type: ignore[attr-defined]
        calls[campaign] = calls.get(campaign, 0) + 1
        if campaign == "flaky" and flaky["left"]:
            flaky["left"] -= 1
            raise ConnectionError("database unavailable")
        if campaign == "bug":
            raise KeyError("missing")

    harness.consumer.on(topics.SPEND, handler=on_spend)
    async with TestKafkaBroker(harness.broker) as broker:
        await broker.publish_batch(
            spend("a"),
            b"{not json",
            spend("b"),
            spend("flaky"),
            b"[" * 3000,
            spend("bug"),
            spend("c"),
            topic=topics.SPEND,
        )

    # the messages before a failing one are not handled again; the flaky one is retried until it
    # passes; the buggy one is tried max_attempts times, then dead-lettered
    assert calls == {"a": 1, "b": 1, "flaky": 3, "bug": 3, "c": 1}
    reasons = [headers[dlq.ERROR_HEADER] for _, headers in harness.dead]
    assert reasons == [
        reasons[0],
        "body: JSON nested too deeply",
        "failed 3 times: KeyError: 'missing'",
    ]
    assert reasons[0].startswith("body: not valid UTF-8 JSON")
    assert harness.dead[0][0] == b"{not json"  # original bytes, verbatim
    assert all(headers[dlq.CONSUMER_GROUP_HEADER] == "g-unit" for _, headers in harness.dead)
    assert all(headers[dlq.ORIGINAL_TOPIC_HEADER] == topics.SPEND for _, headers in harness.dead)
    assert {dlq.ORIGINAL_PARTITION_HEADER, dlq.ORIGINAL_OFFSET_HEADER} <= set(harness.dead[0][1])
    assert harness.failures(Failure.OUTAGE) == 2
    assert harness.failures(Failure.UNKNOWN) == 3
    assert harness.failures(Failure.DATA) == 2


async def test_a_failing_batch_is_split_until_the_poison_records_are_alone() -> None:
    harness = Harness(max_attempts=2)
    stored: list[bytes] = []
    attempts: list[int] = []
    outage = {"left": 2}

    async def on_records(records: Sequence[Any]) -> list[tuple[Any, str]]:
        attempts.append(len(records))
        if outage["left"]:
            outage["left"] -= 1
            raise ConnectionError("warehouse unavailable")  # retried in place, not split
        if any(r.value.startswith(b"poison") for r in records):
            raise decimal.InvalidOperation("cannot store")
        if any(r.value.startswith(b"bug") for r in records):
            raise RuntimeError("unexpected")
        rejected = [(r, "body: declined") for r in records if r.value == b"declined"]
        stored.extend(r.value for r in records if r.value != b"declined")
        return rejected

    harness.consumer.on_raw_batch(topics.SPEND, handler=on_records)
    values = [f"good-{n}".encode() for n in range(12)]
    values[3], values[8], values[10] = b"poison-1", b"poison-2", b"declined"
    values.append(b"bug-1")
    async with TestKafkaBroker(harness.broker) as broker:
        await broker.publish_batch(*values, topic=topics.SPEND)
        await wait_until(lambda: len(harness.dead) >= 4)  # raw batches run as a pipelined task

    assert attempts[:3] == [13, 13, 13]  # two outages: the whole batch again, in place
    assert sorted(stored) == sorted(v for v in values if v.startswith(b"good"))
    assert len(stored) == len(set(stored))  # each good record stored by exactly one call
    dead = {body: headers[dlq.ERROR_HEADER] for body, headers in harness.dead}
    assert len(harness.dead) == 4  # one dead letter per bad record
    assert dead[b"poison-1"] == dead[b"poison-2"] == "InvalidOperation: cannot store"
    assert dead[b"declined"] == "body: declined"
    assert dead[b"bug-1"] == "failed 2 times: RuntimeError: unexpected"


async def test_on_batch_dead_letters_undecodable_messages_and_splits_on_handler_errors() -> None:
    harness = Harness()
    handled: list[str] = []

    async def on_spends(batch: Sequence[Consumed]) -> list[tuple[Consumed, str]]:
        campaigns = [c.data.campaign_id for c in batch]  # type: ignore[attr-defined]
        if "poison" in campaigns:
            raise Rejected("data.campaign_id: poison")
        handled.extend(campaigns)  # type: ignore[arg-type]
        return []

    harness.consumer.on_batch(topics.SPEND, handler=on_spends)
    async with TestKafkaBroker(harness.broker) as broker:
        await broker.publish_batch(
            spend("a"), b"\xff", spend("poison"), spend("b"), topic=topics.SPEND
        )

    assert sorted(handled) == ["a", "b"]
    reasons = sorted(headers[dlq.ERROR_HEADER] for _, headers in harness.dead)
    assert len(reasons) == 2
    assert reasons[1] == "data.campaign_id: poison"
    assert reasons[0].startswith("body: not valid UTF-8 JSON")


async def test_replays_are_handled_by_their_group_only() -> None:
    harness = Harness()
    seen: list[str] = []

    async def on_spend(consumed: Consumed) -> None:
        seen.append(consumed.data.campaign_id)  # type: ignore[attr-defined]

    harness.consumer.on(topics.SPEND, handler=on_spend)
    async with TestKafkaBroker(harness.broker) as broker:
        await broker.publish(
            spend("other"), topics.SPEND, headers={dlq.REPLAY_FOR_GROUP_HEADER: "g-other"}
        )
        await broker.publish(
            spend("mine"), topics.SPEND, headers={dlq.REPLAY_FOR_GROUP_HEADER: "g-unit"}
        )
        await broker.publish(spend("plain"), topics.SPEND)

    assert seen == ["mine", "plain"]
    assert harness.metrics.replays_skipped.labels(topic=topics.SPEND)._value.get() == 1


class _SizeLimitedBroker:
    """A broker stand-in that refuses bodies over ``limit`` bytes, as a DLQ topic with a
    smaller ``max.message.bytes`` would."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent: list[tuple[bytes, str, dict[str, str]]] = []

    async def publish(self, value: bytes, *, topic: str, key: bytes | None, headers: Any) -> None:
        if len(value) > self.limit:
            raise aiokafka.errors.MessageSizeTooLargeError()
        self.sent.append((value, topic, headers))


async def test_a_dead_letter_too_large_keeps_its_headers_and_a_truncated_body() -> None:
    letter = dlq.DeadLetter(
        topic=topics.SPEND,
        partition=1,
        offset=7,
        key=b"k",
        value=b"x" * 5_000_000,
        reason="data: too large",
        group="g",
    )
    broker = _SizeLimitedBroker(limit=100_000)
    size = await dlq.publish(broker, letter)  # type: ignore[arg-type]
    assert size == 5_000_000
    [(body, topic, headers)] = broker.sent
    assert topic == topics.dlq(topics.SPEND)
    assert body == b"x" * dlq.PREVIEW_BYTES
    assert headers[dlq.ORIGINAL_SIZE_HEADER] == "5000000"
    assert headers[dlq.ERROR_HEADER] == "data: too large"
    assert headers[dlq.ORIGINAL_OFFSET_HEADER] == "7"

    small = dlq.DeadLetter(
        topic=topics.SPEND, partition=0, offset=1, key=None, value=None, reason="r", group="g"
    )
    assert await dlq.publish(broker, small) is None  # type: ignore[arg-type]
    assert broker.sent[-1][0] == b"" and broker.sent[-1][2][dlq.TOMBSTONE_HEADER] == "true"


class _BrokerDownTwice:
    """A broker stand-in whose first two publishes fail as if it were unreachable."""

    def __init__(self) -> None:
        self.failures = 2
        self.sent: list[tuple[bytes, str, dict[str, str]]] = []

    async def publish(self, value: bytes, *, topic: str, key: bytes | None, headers: Any) -> None:
        if self.failures:
            self.failures -= 1
            raise aiokafka.errors.KafkaConnectionError("broker unreachable")
        self.sent.append((value, topic, headers))


async def test_a_dead_letter_the_broker_cannot_take_now_is_retried_not_lost() -> None:
    from aiokafka import ConsumerRecord

    broker = _BrokerDownTwice()
    metrics = ServiceMetrics("unit")
    consumer = EventConsumer(
        broker=broker,  # type: ignore[arg-type]
        group_id="g-unit",
        metrics=metrics,
        backoff=FAST,
    )
    record = ConsumerRecord(
        topic=topics.SPEND,
        partition=2,
        offset=41,
        timestamp=0,
        timestamp_type=0,
        key=b"c1",
        value=b"{not json",
        checksum=None,
        serialized_key_size=2,
        serialized_value_size=9,
        headers=(),
    )
    await consumer._dead_letter(record, "body: not valid UTF-8 JSON")

    [(body, topic, headers)] = broker.sent
    assert (body, topic) == (b"{not json", topics.dlq(topics.SPEND))
    assert headers[dlq.ORIGINAL_PARTITION_HEADER] == "2"
    assert headers[dlq.ORIGINAL_OFFSET_HEADER] == "41"
    outages = metrics.consumer_failures.labels(topic=topics.SPEND, kind="outage")
    assert outages._value.get() == 2
    assert metrics.dead_letters.labels(topic=topics.SPEND)._value.get() == 1


async def test_a_record_handed_out_again_is_not_dead_lettered_twice() -> None:
    from aiokafka import ConsumerRecord

    broker = _BrokerDownTwice()
    broker.failures = 0
    consumer = EventConsumer(
        broker=broker,  # type: ignore[arg-type]
        group_id="g-unit",
        metrics=ServiceMetrics("unit"),
        backoff=FAST,
    )

    def record(offset: int, value: bytes) -> ConsumerRecord:  # type: ignore[type-arg]
        return ConsumerRecord(
            topic=topics.SPEND,
            partition=0,
            offset=offset,
            timestamp=0,
            timestamp_type=0,
            key=b"c1",
            value=value,
            checksum=None,
            serialized_key_size=2,
            serialized_value_size=len(value),
            headers=(),
        )

    await consumer._dead_letter(record(7, b"{not json"), "body: not valid UTF-8 JSON")
    await consumer._dead_letter(record(7, b"{not json"), "body: not valid UTF-8 JSON")  # again
    # after a topic reset another record may sit at the same offset: it is dead-lettered
    await consumer._dead_letter(record(7, b"{other"), "body: not valid UTF-8 JSON")
    assert [body for body, _, _ in broker.sent] == [b"{not json", b"{other"]
