"""The consumer kit on FastStream's in-memory test broker: handlers see validated events,
malformed and rejected messages are published to the DLQ with a field-naming reason."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

from faststream.kafka import KafkaBroker, KafkaMessage, TestKafkaBroker

from shared import topics
from shared.consumer import Consumed, EventConsumer, Rejected
from shared.events import new_envelope
from shared.events.ingest import SpendRecorded
from shared.kafka import ERROR_HEADER, ORIGINAL_TOPIC_HEADER
from shared.metrics import ServiceMetrics


def spend(amount: str = "10.00", currency: str = "USD") -> bytes:
    data = SpendRecorded(
        campaign_id="c1", channel="search", amount=Decimal(amount), currency=currency
    )
    return new_envelope(data, source="test").to_bytes()


async def test_valid_message_reaches_the_handler_and_bad_ones_the_dlq() -> None:
    broker = KafkaBroker("localhost:9092")
    metrics = ServiceMetrics("unit")
    seen: list[Consumed] = []
    dead: list[tuple[bytes, dict[str, str]]] = []

    async def on_spend(consumed: Consumed) -> None:
        if consumed.data.currency == "XXX":  # type: ignore[attr-defined]
            raise Rejected("data.currency: no rate for XXX")
        seen.append(consumed)

    EventConsumer(broker=broker, group_id="unit", metrics=metrics).on(
        topics.SPEND, handler=on_spend
    )

    @broker.subscriber(topics.dlq(topics.SPEND))
    async def collect(msg: KafkaMessage) -> None:
        dead.append((msg.body, msg.headers))

    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish(spend(), topics.SPEND)
        await test_broker.publish(b"\xff not json", topics.SPEND)
        bad = json.loads(spend())
        bad["data"]["amount"] = "1.234"
        await test_broker.publish(json.dumps(bad).encode(), topics.SPEND)
        wrong_topic = json.loads(spend())
        wrong_topic["event_type"] = "sale.completed"
        await test_broker.publish(json.dumps(wrong_topic).encode(), topics.SPEND)
        await test_broker.publish(spend(currency="XXX"), topics.SPEND)

    assert [c.data.amount for c in seen] == [Decimal("10.00")]  # type: ignore[attr-defined]
    assert isinstance(seen[0].envelope.event_id, uuid.UUID)
    reasons = [headers[ERROR_HEADER] for _, headers in dead]
    assert reasons[0].startswith("body: not valid UTF-8 JSON")
    assert reasons[1] == "data.amount: Decimal input should have no more than 2 decimal places"
    assert reasons[2] == "event_type: unknown event type 'sale.completed' on topic mrm.spend.v1"
    assert reasons[3] == "data.currency: no rate for XXX"
    assert {headers[ORIGINAL_TOPIC_HEADER] for _, headers in dead} == {topics.SPEND}
    assert dead[0][0] == b"\xff not json"  # the original bytes are kept
    assert metrics.dead_letters.labels(topic=topics.SPEND)._value.get() == 4
