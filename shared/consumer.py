"""The one way services consume: decode → dead-letter the malformed → handle → commit.

Delivery semantics (SPEC §2): offsets are committed only after the handler returned, i.e. after
its effect is durable (at-least-once); handlers are idempotent on ``event_id`` (effectively-once
results). A new consumer group starts from the earliest offset. A message the contract rejects,
or that a handler rejects with ``Rejected``, goes to ``<topic>.dlq`` and consumption continues.
``on_raw_batch`` is the columnar variant: the handler decodes the raw records itself (in bulk)
and returns the records it rejects, with their reason, for the DLQ; its batches are pipelined
one deep (the next batch is fetched while one is handled) and commit their own offsets.
Any other handler error is transient: the message is retried in place with capped backoff and
never skipped, so a batch's offsets on every partition stay uncommitted until it succeeds.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from operator import attrgetter
from typing import Any, TypeAlias

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage

from shared.events import Envelope, EventData, EventRejected, decode
from shared.kafka import dead_letter
from shared.metrics import ServiceMetrics
from shared.watch import Subscription

log = structlog.get_logger(__name__)


class Rejected(EventRejected):
    """A well-formed event a handler cannot accept (e.g. unknown currency); goes to the DLQ."""


Record: TypeAlias = ConsumerRecord[Any, Any]
"""A record as the broker delivers it (key and value are bytes or None)."""


@dataclass(frozen=True, slots=True)
class Consumed:
    """A validated message with where it came from."""

    envelope: Envelope
    data: EventData
    topic: str
    partition: int
    offset: int


Handler = Callable[[Consumed], Awaitable[None]]
BatchHandler = Callable[[Sequence[Consumed]], Awaitable[Sequence[tuple[Consumed, str]] | None]]
"""A batch handler may return (message, reason) pairs it rejects; they go to the DLQ."""
RawBatchHandler = Callable[[Sequence[Any]], Awaitable[Sequence[tuple[Any, str]] | None]]
"""Gets the batch's raw ConsumerRecords; returns (record, reason) pairs for the DLQ."""


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff for transient handler failures."""

    initial_s: float = 0.1
    maximum_s: float = 5.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        return min(self.maximum_s, self.initial_s * (2 ** (attempt - 1)))


class EventConsumer:
    """Registers a service's subscribers on its broker with the platform's delivery semantics."""

    def __init__(
        self,
        *,
        broker: KafkaBroker,
        group_id: str,
        metrics: ServiceMetrics,
        backoff: Backoff | None = None,
        fetch_max_wait_ms: int = 100,
    ) -> None:
        self.broker = broker
        self.group_id = group_id
        self.metrics = metrics
        self.backoff = backoff or Backoff()
        # how long the broker may hold a fetch for data to arrive: an upper bound on the time
        # an event waits before we see it (aiokafka's 500 ms default delays every event by up
        # to that much on brokers that hold fetches for their full wait, e.g. Tansu)
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self._subscribed = False
        self._lag: dict[tuple[str, int], int] = {}
        self._counters: dict[tuple[str, str], Any] = {}
        # what shared.watch.BrokerWatch looks at: each subscriber's topics and live consumer
        self.subscriptions: list[Subscription] = []

    def _count(self, metric: str, topic: str, amount: int = 1) -> None:
        """Increment a per-topic counter through a cached labelled child (hot path)."""
        child = self._counters.get((metric, topic))
        if child is None:
            child = getattr(self.metrics, metric).labels(topic=topic)
            self._counters[(metric, topic)] = child
        child.inc(amount)

    def _claim_subscription(self) -> None:
        if self._subscribed:
            raise RuntimeError(
                f"consumer group {self.group_id!r} already has its subscription; "
                "handle several topics with one `route` (or `on`) call"
            )
        self._subscribed = True

    def route(self, handlers: Mapping[str, Handler]) -> None:
        """Handle each message with the handler of its topic (one subscription for all)."""

        async def dispatch(consumed: Consumed) -> None:
            await handlers[consumed.topic](consumed)

        dispatch.__name__ = "route"
        self.on(*handlers, handler=dispatch)

    def on(self, *topics: str, handler: Handler, max_records: int = 500) -> None:
        """Handle each message of ``topics`` one at a time, in partition order.

        Messages are fetched in batches of up to ``max_records`` and the batch's offsets are
        committed once, after its every message was handled (a commit per message would cost a
        broker round trip each and cap a consumer near a thousand messages a second); a crash
        mid-batch re-delivers its handled part, which handlers absorb (idempotent on event_id).
        """
        self._claim_subscription()
        name = _name_of(handler)

        async def consume(msg: KafkaMessage) -> None:
            records = _records(msg)
            for record in records:
                consumed = await self._decode(record)
                if consumed is None:
                    continue
                with structlog.contextvars.bound_contextvars(**_log_context(consumed)):
                    await self._with_retries(
                        name, record.topic, partial(self._run_one, handler, consumed)
                    )
            self._observe_lag(msg, records)

        self._subscribe_batches(topics, consume, max_records, batch_timeout_ms=50)

    def on_batch(
        self,
        *topics: str,
        handler: BatchHandler,
        max_records: int = 5000,
        batch_timeout_ms: int = 50,
    ) -> None:
        """Handle validated messages of ``topics`` in batches."""
        self._claim_subscription()

        async def consume(msg: KafkaMessage) -> None:
            records = _records(msg)
            decoded = [await self._decode(record) for record in records]
            batch = [item for item in decoded if item is not None]
            if not batch:
                self._observe_lag(msg, records)
                return
            name = _name_of(handler)

            async def attempt() -> None:
                started = time.perf_counter()
                rejected = await handler(batch)
                self.metrics.handler_seconds.labels(handler=name).observe(
                    time.perf_counter() - started
                )
                for item in rejected or ():
                    await self._reject_consumed(item[0], item[1])

            await self._with_retries(name, records[0].topic, attempt)
            self._observe_lag(msg, records)

        self._subscribe_batches(topics, consume, max_records, batch_timeout_ms)

    def on_raw_batch(
        self,
        *topics: str,
        handler: RawBatchHandler,
        max_records: int = 5000,
        batch_timeout_ms: int = 50,
    ) -> None:
        """Handle raw records of ``topics`` in batches (the columnar hot path).

        The handler decodes and validates the records itself and returns ``(record, reason)``
        for each one it rejects (malformed or unacceptable); those go to the DLQ with the
        original bytes. A raising handler gets the whole batch again (retried in place).

        Batches are pipelined one deep: while the handler works on a batch (mostly off the
        event loop, on worker threads), the next one is fetched; it is handed over only when
        the previous one is done. Each batch's offsets (on every partition it spans) are
        committed explicitly right after its handler returned, in batch order, so a commit
        never covers a record whose effect is not durable."""
        self._claim_subscription()
        name = _name_of(handler)
        in_flight: asyncio.Task[None] | None = None

        async def process(msg: KafkaMessage, records: tuple[Record, ...]) -> None:
            async def attempt() -> None:
                started = time.perf_counter()
                rejected = await handler(records)
                self.metrics.handler_seconds.labels(handler=name).observe(
                    time.perf_counter() - started
                )
                for record, reason in rejected or ():
                    await dead_letter(
                        self.broker,
                        topic=record.topic,
                        value=record.value,
                        key=record.key,
                        reason=reason,
                        metrics=self.metrics,
                    )

            await self._with_retries(name, records[0].topic, attempt)
            await _commit(msg, records)
            self._observe_lag(msg, records)

        async def consume(msg: KafkaMessage) -> None:
            nonlocal in_flight
            records = _records(msg)
            for topic, count in Counter(map(_topic_of, records)).items():
                self._count("messages_in", topic, count)
            if in_flight is not None:
                await in_flight  # the previous batch: handled and committed, in order
            in_flight = asyncio.create_task(process(msg, records))

        self._subscribe_batches(topics, consume, max_records, batch_timeout_ms, raw=True)

    def _subscribe_batches(
        self,
        topics: Sequence[str],
        consume: Callable[[KafkaMessage], Awaitable[None]],
        max_records: int,
        batch_timeout_ms: int,
        *,
        raw: bool = False,
    ) -> None:
        """Register a batch ``consume`` with the same delivery semantics as ``on``; a raw one
        skips FastStream's per-record parsing and decoding (the handler reads the records)."""
        lean: dict[str, Any] = {"parser": _parse_lean, "decoder": _no_body} if raw else {}
        subscription = Subscription(topics)  # rewinds partitions reset on the broker
        subscriber = self.broker.subscriber(
            *topics,
            group_id=self.group_id,
            auto_offset_reset="earliest",
            # a raw batch commits its own offsets when its (pipelined) handler is done
            ack_policy=AckPolicy.MANUAL if raw else AckPolicy.NACK_ON_ERROR,
            batch=True,
            max_records=max_records,
            batch_timeout_ms=batch_timeout_ms,
            fetch_max_wait_ms=self.fetch_max_wait_ms,
            listener=subscription,
            **lean,
        )
        subscriber(consume)
        subscription.bind(subscriber)
        self.subscriptions.append(subscription)

    def _observe_lag(self, msg: KafkaMessage, records: Sequence[Record]) -> None:
        """Update the lag gauge from the consumer's last known high watermarks.

        Approximate by nature (Tansu reports a partition's end as the start of its last batch
        + 1), so it never goes below zero."""
        consumer = getattr(msg, "consumer", None)
        highwater = getattr(consumer, "highwater", None)
        if highwater is None:
            return
        last = _last_offsets(records)
        for (topic, partition), offset in last.items():
            end = highwater(TopicPartition(topic, partition))
            if end is not None:
                self._lag[(topic, partition)] = max(0, end - offset - 1)
        for topic in {topic for topic, _ in last}:
            total = sum(lag for (name, _), lag in self._lag.items() if name == topic)
            self.metrics.consumer_lag.labels(topic=topic).set(total)

    async def _decode(self, record: Record) -> Consumed | None:
        topic, value = record.topic, record.value
        self._count("messages_in", topic)
        try:
            envelope, data = decode(value, topic=topic)
        except EventRejected as exc:
            await dead_letter(
                self.broker,
                topic=topic,
                value=value,
                key=record.key,
                reason=exc.reason,
                metrics=self.metrics,
            )
            return None
        return Consumed(
            envelope=envelope,
            data=data,
            topic=topic,
            partition=record.partition,
            offset=record.offset,
        )

    async def _run_one(self, handler: Handler, consumed: Consumed) -> None:
        started = time.perf_counter()
        try:
            await handler(consumed)
        except Rejected as exc:
            await self._reject_consumed(consumed, exc.reason)
        finally:
            self.metrics.handler_seconds.labels(handler=_name_of(handler)).observe(
                time.perf_counter() - started
            )

    async def _reject_consumed(self, consumed: Consumed, reason: str) -> None:
        key = consumed.data.key()
        await dead_letter(
            self.broker,
            topic=consumed.topic,
            value=consumed.envelope.to_bytes(),
            key=key.encode() if key else None,
            reason=reason,
            metrics=self.metrics,
        )

    async def _with_retries(
        self, name: str, topic: str, attempt: Callable[[], Awaitable[None]]
    ) -> None:
        tries = 0
        while True:
            tries += 1
            try:
                await attempt()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - transient by contract; retried, never skipped
                self.metrics.messages_failed.labels(topic=topic).inc()
                delay = self.backoff.delay(tries)
                log.warning(
                    "handler_failed_retrying",
                    handler=name,
                    topic=topic,
                    attempt=tries,
                    retry_in_s=delay,
                    error=repr(exc),
                )
                await asyncio.sleep(delay)


async def _commit(msg: KafkaMessage, records: Sequence[Record]) -> None:
    """Commit the offsets just past ``records`` on every partition they span (not the
    consumer's position, which may already be past a batch fetched meanwhile)."""
    consumer = getattr(msg, "consumer", None)
    if not isinstance(consumer, AIOKafkaConsumer):  # FastStream's test broker
        if consumer is not None:
            await consumer.commit()
        return
    offsets = {TopicPartition(*key): last + 1 for key, last in _last_offsets(records).items()}
    try:
        await consumer.commit(offsets)
    except KafkaError as exc:
        # e.g. the partitions were reassigned meanwhile: their next owner gets the batch
        # again, and handlers are idempotent on event_id
        log.warning("commit_failed", offsets=len(offsets), error=repr(exc))


def _last_offsets(records: Sequence[Record]) -> dict[tuple[str, int], int]:
    """(topic, partition) → offset of the batch's last record there (a hot path: one dict
    comprehension; a delivery holds each partition's records in offset order)."""
    return {(record.topic, record.partition): record.offset for record in records}


_topic_of = attrgetter("topic")


def _records(msg: KafkaMessage) -> tuple[Record, ...]:
    """The records of a delivery: one for a single-message subscriber, several for a batch."""
    raw = msg.raw_message
    if isinstance(raw, tuple):
        return raw
    return tuple(raw) if isinstance(raw, list) else (raw,)  # a list from the test broker


async def _parse_lean(
    records: tuple[Record, ...], parse_batch: Callable[..., Awaitable[KafkaMessage]]
) -> KafkaMessage:
    """FastStream's batch message without its per-record header dicts and bodies: only the
    first record is parsed (for the message's metadata and consumer); the batch is attached
    whole, so acknowledging or seeking back still covers every partition it spans."""
    msg = await parse_batch(records[:1])
    msg.raw_message = records
    return msg


async def _no_body(msg: KafkaMessage) -> None:
    """Raw batch handlers read the records themselves; there is no body to decode."""
    return None


def _name_of(handler: object) -> str:
    return str(getattr(handler, "__name__", "handler"))


def _log_context(consumed: Consumed) -> dict[str, str]:
    """What every log line written while handling a message carries."""
    context = {
        "event_id": str(consumed.envelope.event_id),
        "event_type": consumed.envelope.event_type,
    }
    campaign_id = getattr(consumed.data, "campaign_id", None)
    if campaign_id:
        context["campaign_id"] = str(campaign_id)
    return context
