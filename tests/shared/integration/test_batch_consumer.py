"""Batch consumption on the real broker: a failing batch spanning several partitions is retried
whole and no partition's records are skipped; a rejected record goes to the DLQ."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from decimal import Decimal

import pytest

from shared import topics
from shared.consumer import Backoff, Consumed, EventConsumer
from shared.events.ingest import SpendRecorded
from shared.kafka import ERROR_HEADER, make_broker
from shared.metrics import ServiceMetrics
from shared.publisher import EventPublisher

pytestmark = pytest.mark.integration


async def test_failed_batches_are_retried_without_skipping_any_partition(
    kafka_bootstrap: str, unique_id: str, topic_reader
) -> None:  # type: ignore[no-untyped-def]
    campaigns = [f"b-{unique_id}-{n}" for n in range(12)]  # keys spread over the 3 partitions
    sent: set[uuid.UUID] = set()
    with EventPublisher(kafka_bootstrap, source="test") as publisher:
        for campaign in campaigns:
            for _ in range(5):
                envelope = publisher.publish(
                    SpendRecorded(
                        campaign_id=campaign,
                        channel="search",
                        amount=Decimal("1"),
                        currency="EUR" if campaign.endswith("-7") else "USD",
                    )
                )
                sent.add(envelope.event_id)

    stored: dict[uuid.UUID, int] = {}
    partitions: set[int] = set()
    failures = {"left": 3}

    async def on_spend(batch: Sequence[Consumed]) -> list[tuple[Consumed, str]]:
        mine = [c for c in batch if c.data.campaign_id in campaigns]  # type: ignore[attr-defined]
        if mine and failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("warehouse unavailable")
        rejected = []
        for consumed in mine:
            if consumed.data.currency == "EUR":  # type: ignore[attr-defined]
                rejected.append((consumed, "data.currency: no rate for EUR"))
                continue
            stored[consumed.envelope.event_id] = stored.get(consumed.envelope.event_id, 0) + 1
            partitions.add(consumed.partition)
        return rejected

    broker = make_broker(kafka_bootstrap, client_id="test-batch")
    consumer = EventConsumer(
        broker=broker,
        group_id=f"g-{unique_id}",
        metrics=ServiceMetrics("test_batch"),
        backoff=Backoff(initial_s=0.01, maximum_s=0.05),
    )
    consumer.on_batch(topics.SPEND, handler=on_spend, max_records=20)
    async with broker:
        await broker.start()
        deadline = asyncio.get_running_loop().time() + 40
        while len(stored) < 55 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)

    assert failures["left"] == 0
    assert len(stored) == 55 and set(stored) < sent  # 60 sent, the 5 EUR ones rejected
    assert len(partitions) == 3  # the batches spanned every partition
    dead = topic_reader(
        kafka_bootstrap,
        topics.dlq(topics.SPEND),
        expect=5,
        match=lambda r: r.key == f"b-{unique_id}-7".encode(),
    )
    assert {dict(r.headers)[ERROR_HEADER].decode() for r in dead} == {
        "data.currency: no rate for EUR"
    }
