"""The consumer kit against the real broker: DLQ with reasons, retries, earliest offsets."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal

import pytest
from kafka import KafkaConsumer
from kafka_kit import start_group_at_end

from shared import topics
from shared.consumer import Backoff, Consumed, EventConsumer, Rejected
from shared.events.ingest import SpendRecorded
from shared.kafka import ERROR_HEADER, ORIGINAL_TOPIC_HEADER, make_broker
from shared.metrics import ServiceMetrics
from shared.publisher import EventPublisher

pytestmark = pytest.mark.integration


def read_dlq(
    bootstrap: str, topic: str, *, key: bytes, expect: int, timeout_s: float = 20.0
) -> list:
    """The records of ``topic``'s DLQ with ``key`` (waits for ``expect`` of them); other tests
    leave dead letters of their own on the shared topic."""
    consumer = KafkaConsumer(
        topics.dlq(topic),
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=int(timeout_s * 1000),
        fetch_max_bytes=64 << 20,
    )
    found = []
    for record in consumer:
        if record.key == key:
            found.append(record)
        if len(found) >= expect:
            break
    consumer.close()
    return found


async def wait_until(predicate, timeout_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_valid_handled_malformed_dead_lettered_transient_retried(
    kafka_bootstrap: str, unique_id: str
) -> None:
    campaign = f"c-{unique_id}"
    seen: list[Consumed] = []
    failures = {"left": 2}
    rejected: list[str] = []

    async def on_spend(consumed: Consumed) -> None:
        if consumed.data.campaign_id != campaign:  # type: ignore[attr-defined]
            return
        if consumed.data.currency == "XXX":  # type: ignore[attr-defined]
            rejected.append(str(consumed.envelope.event_id))
            raise Rejected("data.currency: no rate configured for XXX")
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("store unavailable")
        seen.append(consumed)

    start_group_at_end(kafka_bootstrap, f"g-{unique_id}", [topics.SPEND])
    with EventPublisher(kafka_bootstrap, source="test") as publisher:
        good = publisher.publish(
            SpendRecorded(
                campaign_id=campaign, channel="search", amount=Decimal("10.50"), currency="USD"
            )
        )
        publisher.send_raw(topics.SPEND, b"{not json", key=campaign)
        bad_amount = json.loads(good.to_bytes())
        bad_amount["event_id"] = str(uuid.uuid4())
        bad_amount["data"]["amount"] = "-1"
        publisher.send_raw(topics.SPEND, json.dumps(bad_amount).encode(), key=campaign)
        publisher.publish(
            SpendRecorded(
                campaign_id=campaign, channel="search", amount=Decimal("1"), currency="XXX"
            )
        )

    broker = make_broker(kafka_bootstrap, client_id="test")
    consumer = EventConsumer(
        broker=broker,
        group_id=f"g-{unique_id}",
        metrics=ServiceMetrics("test"),
        backoff=Backoff(initial_s=0.01, maximum_s=0.05),
    )
    consumer.on(topics.SPEND, handler=on_spend)
    async with broker:
        await broker.start()
        await wait_until(lambda: len(seen) == 1 and len(rejected) == 1)

    assert seen[0].envelope.event_id == good.event_id
    assert seen[0].data.amount == Decimal("10.50")  # type: ignore[attr-defined]
    assert failures["left"] == 0

    # every dead letter of this campaign: the three expected, and any duplicate within 3 s
    mine = read_dlq(kafka_bootstrap, topics.SPEND, key=campaign.encode(), expect=4, timeout_s=3)
    reasons = sorted(dict(record.headers)[ERROR_HEADER].decode() for record in mine)
    assert len(reasons) == 3
    assert reasons[0].startswith("body: not valid UTF-8 JSON")
    assert reasons[1].startswith("data.amount:")
    assert reasons[2] == "data.currency: no rate configured for XXX"
    assert {dict(record.headers)[ORIGINAL_TOPIC_HEADER].decode() for record in mine} == {
        topics.SPEND
    }
