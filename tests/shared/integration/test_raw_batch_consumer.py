"""Raw batch consumption on the real broker: batches are pipelined, yet a batch's offsets are
committed only after its handler returned; a failing batch is retried whole; rejected records
go to the DLQ with their original bytes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest
from kafka import KafkaAdminClient

from shared import topics
from shared.consumer import Backoff, EventConsumer
from shared.events.ingest import SpendRecorded
from shared.kafka import ERROR_HEADER, make_broker
from shared.metrics import ServiceMetrics
from shared.publisher import EventPublisher

pytestmark = pytest.mark.integration


def committed(bootstrap: str, group_id: str) -> dict[int, int]:
    """partition → committed offset of ``group_id`` on the spend topic."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets({group_id: None})[group_id]
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topics.SPEND}


async def test_a_batch_is_committed_only_after_its_handler_returned(
    kafka_bootstrap: str, unique_id: str, topic_reader
) -> None:  # type: ignore[no-untyped-def]
    # keys spread over the 3 partitions: 30 random keys all miss one with odds (2/3)^30 ≈ 5e-6
    # (12 missed one about once in 40 runs)
    campaigns = [f"r-{unique_id}-{n}" for n in range(30)]
    with EventPublisher(kafka_bootstrap, source="test") as publisher:
        for campaign in campaigns:
            for _ in range(3):
                publisher.publish(
                    SpendRecorded(
                        campaign_id=campaign, channel="search", amount=Decimal("1"), currency="USD"
                    )
                )
        publisher.send_raw(topics.SPEND, b"{not json", key=f"r-{unique_id}-bad")

    group_id = f"g-{unique_id}"
    handled: dict[tuple[int, int], int] = {}
    failures = {"left": 1}
    blocked: asyncio.Event = asyncio.Event()
    release: asyncio.Event = asyncio.Event()
    held: list[Any] = []

    async def on_records(records: Sequence[Any]) -> list[tuple[Any, str]]:
        mine = [r for r in records if r.key and r.key.decode().startswith(f"r-{unique_id}")]
        if mine and failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("warehouse unavailable")
        if mine and not held:
            held.extend(mine)
            blocked.set()
            await release.wait()
        rejected = []
        for record in mine:
            if record.value == b"{not json":
                rejected.append((record, "body: not valid UTF-8 JSON"))
                continue
            key = (record.partition, record.offset)
            handled[key] = handled.get(key, 0) + 1
        return rejected

    broker = make_broker(kafka_bootstrap, client_id="test-raw-batch")
    consumer = EventConsumer(
        broker=broker,
        group_id=group_id,
        metrics=ServiceMetrics("test_raw_batch"),
        backoff=Backoff(initial_s=0.01, maximum_s=0.05),
    )
    consumer.on_raw_batch(topics.SPEND, handler=on_records, max_records=10)
    async with broker:
        await broker.start()
        await asyncio.wait_for(blocked.wait(), timeout=40)
        await asyncio.sleep(1.0)  # time for a wrong early commit to land
        during = await asyncio.to_thread(committed, kafka_bootstrap, group_id)
        release.set()
        deadline = asyncio.get_running_loop().time() + 40
        while len(handled) < 90 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        after = await asyncio.to_thread(committed, kafka_bootstrap, group_id)

    assert failures["left"] == 0
    for record in held:  # nothing of the held batch was committed while it was handled
        assert during.get(record.partition, -1) <= record.offset
    assert len(handled) == 90 and set(handled.values()) == {1}  # each exactly once
    last: dict[int, int] = {}
    for partition, offset in handled:
        last[partition] = max(last.get(partition, -1), offset)
    assert len(last) == 3
    for partition, offset in last.items():
        assert after[partition] >= offset + 1
    dead = topic_reader(
        kafka_bootstrap,
        topics.dlq(topics.SPEND),
        expect=1,
        match=lambda r: r.key == f"r-{unique_id}-bad".encode(),
    )
    assert [dict(r.headers)[ERROR_HEADER].decode() for r in dead] == ["body: not valid UTF-8 JSON"]
