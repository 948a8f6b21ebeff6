"""Kafka side of the benchmark: the fast pre-publisher, the bare counting consumer, DLQ checks.

Everything here is plain aiokafka (no FastStream, no envelopes decoded), so the bare consumer
is the ceiling any Python consumer of this broker can reach on this machine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.kafka import ERROR_HEADER

_BATCH_BYTES = 512 * 1024


class BenchTimeout(RuntimeError):
    """A benchmark phase did not finish within its time limit."""


@dataclass(frozen=True)
class Published:
    """How many messages a publish pass sent and how fast."""

    messages: int
    seconds: float

    @property
    def rate(self) -> float:
        """Messages per second."""
        return self.messages / self.seconds if self.seconds else 0.0


async def publish_fast(
    bootstrap: str, messages: Iterable[tuple[str, int | None, bytes, bytes]]
) -> Published:
    """Send pre-serialised (topic, partition, key, value) messages in hand-built batches."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        max_batch_size=_BATCH_BYTES,
        max_request_size=4 * _BATCH_BYTES,
        client_id="mrm-bench-publisher",
    )
    await producer.start()
    started = time.perf_counter()
    sent = 0
    try:
        batches: dict[tuple[str, int], object] = {}
        in_flight: list[asyncio.Future[object]] = []
        for topic, partition, key, value in messages:
            slot = (topic, partition or 0)
            batch = batches.get(slot)
            if batch is None:
                batch = batches[slot] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:  # type: ignore[attr-defined]
                in_flight.append(await producer.send_batch(batch, slot[0], partition=slot[1]))  # type: ignore[arg-type]
                batch = batches[slot] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)  # type: ignore[attr-defined]
                if len(in_flight) >= 16:
                    await asyncio.gather(*in_flight)
                    in_flight.clear()
            sent += 1
        for (topic, partition), batch in batches.items():
            if batch.record_count():  # type: ignore[attr-defined]
                in_flight.append(await producer.send_batch(batch, topic, partition=partition))  # type: ignore[arg-type]
        await asyncio.gather(*in_flight)
    finally:
        await producer.stop()
    return Published(messages=sent, seconds=time.perf_counter() - started)


@dataclass(frozen=True)
class Counted:
    """What the bare consumer read."""

    messages: int
    seconds: float

    @property
    def rate(self) -> float:
        """Messages per second, first fetch to last."""
        return self.messages / self.seconds if self.seconds else 0.0


async def count_messages(
    bootstrap: str, topic: str, *, expect: int, timeout_s: float = 600.0
) -> Counted:
    """Read ``topic`` from the start with a bare aiokafka consumer that only counts, until
    ``expect`` messages were seen (Tansu's high watermarks are approximate, so the count, not
    the end offsets, ends the pass)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="mrm-bench-bare-consumer",
    )
    await consumer.start()
    try:
        await consumer.topics()  # fetches metadata of every topic
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen = 0
        started = time.perf_counter()
        deadline = time.monotonic() + timeout_s
        while seen < expect:
            if time.monotonic() > deadline:
                raise BenchTimeout(f"bare consumer saw {seen} of {expect} messages on {topic}")
            fetched = await consumer.getmany(timeout_ms=1000)
            seen += sum(len(records) for records in fetched.values())
        return Counted(messages=seen, seconds=time.perf_counter() - started)
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class DeadLetters:
    """Malformed messages found in dead-letter topics."""

    found: set[str]
    without_reason: set[str]
    reasons: dict[str, str]
    """One sample reason (``x-error``) per kind of message."""


async def scan_dead_letters(
    bootstrap: str,
    topics: Iterable[str],
    *,
    markers: dict[str, str],
    timeout_s: float = 60.0,
) -> DeadLetters:
    """Look for every marker (marker → kind) in the DLQ topics, reading them from the start."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="mrm-bench-dlq-reader",
    )
    await consumer.start()
    found: set[str] = set()
    without_reason: set[str] = set()
    reasons: dict[str, str] = {}
    try:
        await consumer.topics()  # fetches metadata of every topic
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in consumer.partitions_for_topic(topic) or ()
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + timeout_s
        while len(found) < len(markers) and time.monotonic() < deadline:
            fetched = await consumer.getmany(timeout_ms=500)
            for record in (r for records in fetched.values() for r in records):
                marker = _marker_in(record.key, record.value, markers)
                if marker is None:
                    continue
                found.add(marker)
                headers = dict(record.headers or ())
                reason = headers.get(ERROR_HEADER, b"").decode(errors="replace")
                if not reason:
                    without_reason.add(marker)
                reasons.setdefault(markers[marker], reason)
    finally:
        await consumer.stop()
    return DeadLetters(found=found, without_reason=without_reason, reasons=reasons)


def _marker_in(key: bytes | None, value: bytes | None, markers: dict[str, str]) -> str | None:
    text = (key or b"").decode(errors="replace")
    if text in markers:
        return text
    body = (value or b"").decode(errors="replace")
    start = body.find("bad-")
    if start < 0:
        return None
    candidate = body[start : start + len(next(iter(markers)))]
    return candidate if candidate in markers else None
