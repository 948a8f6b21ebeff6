"""The one way services consume: decode → handle → commit, with one policy for failures.

Delivery semantics (SPEC §2): offsets are committed only after the handler returned, i.e. after
its effect is durable (at-least-once); handlers are idempotent on ``event_id`` (effectively-once
results). A new consumer group starts from the earliest offset.

Failures are sorted by ``shared.failures.classify`` the same way for every subscriber kind:
invalid data (the contract's or a handler's ``Rejected``, a store refusing a value) goes to
``<topic>.dlq`` at once; an outage (broker, database, SMTP) is retried in place with capped
backoff, never skipped; anything else is retried ``max_attempts`` times, then dead-lettered
with the exception as its reason. A dead letter keeps the original key and bytes and says which
consumer group wrote it (``shared.dlq``); each group dead-letters a message once.

A bad message never makes a batch replay: ``on`` keeps its place within a batch (a retry
resumes at the failing message), and a batch handler (``on_batch``, ``on_raw_batch``) that
fails with anything but an outage has its batch split in halves until the poison records are
alone, so they are dead-lettered once each while the rest is handled.
``on_raw_batch`` is the columnar variant: the handler decodes the raw records itself (in bulk)
and returns the records it rejects, with their reason, for the DLQ; its batches are pipelined
one deep (the next batch is fetched while one is handled) and commit their own offsets.
Records replayed from a DLQ for another consumer group (``x-replay-for-group``) are skipped.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, TypeAlias, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from opentelemetry import context as otel_context
from opentelemetry import trace

from shared import dlq, tracing
from shared.events import Envelope, EventData, EventRejected, decode
from shared.failures import Classifier, Failure, classify, reason_of
from shared.metrics import ServiceMetrics
from shared.watch import Subscription

log = structlog.get_logger(__name__)

DEFAULT_MAX_ATTEMPTS = 5
"""Attempts at a message failing with an error that is neither data nor outage, before it is
dead-lettered (``MRM_CONSUMER_MAX_ATTEMPTS``)."""
DEAD_LETTER_MEMORY = 10_000
"""How many recent dead-lettered records a consumer remembers, so one handed out again is not
dead-lettered twice (after a restart the memory is empty: README "Dead letters" says so)."""


class Rejected(EventRejected):
    """A well-formed event a handler cannot accept (e.g. unknown currency); goes to the DLQ."""


Record: TypeAlias = ConsumerRecord[Any, Any]
"""A record as the broker delivers it (key and value are bytes or None)."""


@dataclass(frozen=True, slots=True)
class Consumed:
    """A validated message with where it came from (and the record itself, for its DLQ)."""

    envelope: Envelope
    data: EventData
    topic: str
    partition: int
    offset: int
    record: Record | None = None


Handler = Callable[[Consumed], Awaitable[None]]
BatchHandler = Callable[[Sequence[Consumed]], Awaitable[Sequence[tuple[Consumed, str]] | None]]
"""A batch handler may return (message, reason) pairs it rejects; they go to the DLQ."""
RawBatchHandler = Callable[[Sequence[Any]], Awaitable[Sequence[tuple[Any, str]] | None]]
"""Gets the batch's raw ConsumerRecords; returns (record, reason) pairs for the DLQ."""

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff for retried handler failures."""

    initial_s: float = 0.1
    maximum_s: float = 5.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        return min(self.maximum_s, self.initial_s * (2 ** (min(attempt, 32) - 1)))


def max_attempts_from_env() -> int:
    """``MRM_CONSUMER_MAX_ATTEMPTS`` (default 5, at least 1)."""
    raw = os.environ.get("MRM_CONSUMER_MAX_ATTEMPTS", "")
    return max(1, int(raw)) if raw.strip().isdigit() else DEFAULT_MAX_ATTEMPTS


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
        max_attempts: int | None = None,
        classifiers: Sequence[Classifier] = (),
        dead_letter_max_bytes: int = dlq.MAX_BODY_BYTES,
    ) -> None:
        self.broker = broker
        self.group_id = group_id
        self.metrics = metrics
        self.backoff = backoff or Backoff()
        # how long the broker may hold a fetch for data to arrive: an upper bound on the time
        # an event waits before we see it (aiokafka's 500 ms default delays every event by
        # up to that much on brokers that hold fetches for their full wait, e.g. Tansu)
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.max_attempts = max(1, max_attempts or max_attempts_from_env())
        self.classifiers = tuple(classifiers)
        self.dead_letter_max_bytes = dead_letter_max_bytes
        self._subscribed = False
        # records this consumer dead-lettered lately: a batch handed out again (its commit lost
        # to a rebalance) does not write their dead letters a second time
        self._lettered: OrderedDict[tuple[str, int, int, int], None] = OrderedDict()
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
        A failing message is retried or dead-lettered where it stands: the messages before it
        are not handled again, and after a dead letter the batch's progress is committed, so a
        restart does not dead-letter it a second time.
        """
        self._claim_subscription()
        name = _name_of(handler)

        async def consume(msg: KafkaMessage) -> None:
            records = _records(msg)
            for index, record in enumerate(records):
                self._count("messages_in", record.topic)
                if self._meant_for_another_group(record):
                    continue
                if not await self._handle_one(name, handler, record):
                    await _commit(msg, records[: index + 1])

        self._subscribe_batches(topics, consume, max_records, batch_timeout_ms=50)

    def on_batch(
        self,
        *topics: str,
        handler: BatchHandler,
        max_records: int = 5000,
        batch_timeout_ms: int = 50,
    ) -> None:
        """Handle validated messages of ``topics`` in batches (split on a poison message)."""
        self._claim_subscription()
        name = _name_of(handler)

        async def consume(msg: KafkaMessage) -> None:
            mine: list[Record] = []
            for record in _records(msg):
                self._count("messages_in", record.topic)
                if not self._meant_for_another_group(record):
                    mine.append(record)
            if not mine:
                return
            # the span covers decoding too: a record that does not decode is dead-lettered in it
            with tracing.batch_span(name, mine):
                batch: list[Consumed] = []
                for record in mine:
                    try:
                        batch.append(_consumed(record))
                    except Exception as exc:  # noqa: BLE001 - decoding is pure: failure is data
                        self._count_failure(record.topic, Failure.DATA)
                        await self._dead_letter(record, reason_of(exc))
                if batch:
                    await self._settle(name, batch, handler, _record_of_consumed)

        # consume reads the raw records: FastStream's message objects per record would be built
        # and their JSON bodies decoded for nothing (a fifth of a spend consumer's CPU)
        self._subscribe_batches(topics, consume, max_records, batch_timeout_ms, lean=True)

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
        original bytes. A handler that raises is retried in place on an outage; on any other
        error its batch is split in halves until the failing records are isolated.

        Batches are pipelined one deep: while the handler works on a batch (mostly off the
        event loop, on worker threads), the next one is fetched; it is handed over only when
        the previous one is done. Each batch's offsets (on every partition it spans) are
        committed explicitly right after its handler returned, in batch order, so a commit
        never covers a record whose effect is not durable."""
        self._claim_subscription()
        name = _name_of(handler)
        in_flight: asyncio.Task[None] | None = None

        async def process(msg: KafkaMessage, records: tuple[Record, ...]) -> None:
            # records replayed for another group are rare: one look at each record's headers
            # (usually none) finds them
            mine = [r for r in records if not r.headers or not self._meant_for_another_group(r)]
            if mine:
                with tracing.batch_span(name, mine):
                    await self._settle(name, mine, handler, _same)
            await _commit(msg, records)

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
        lean: bool = False,
    ) -> None:
        """Register a batch ``consume`` with the same delivery semantics as ``on``; a raw (or
        ``lean``) one skips FastStream's per-record parsing and decoding (``consume`` reads the
        records)."""
        parsing: dict[str, Any] = (
            {"parser": _parse_lean, "decoder": _no_body} if raw or lean else {}
        )
        self.metrics.consuming(topics)
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
            **parsing,
        )
        subscriber(consume)
        subscription.bind(subscriber)
        self.subscriptions.append(subscription)

    # --- the failure policy ------------------------------------------------------------------

    def classify(self, exc: BaseException) -> Failure:
        """The kind of a handler failure: the service's classifiers first, then the platform's."""
        return classify(exc, extra=self.classifiers)

    def _meant_for_another_group(self, record: Record) -> bool:
        target = dlq.replay_target(record.headers)
        if target is None or target == self.group_id:
            return False
        self._count("replays_skipped", record.topic)
        return True

    async def _handle_one(self, name: str, handler: Handler, record: Record) -> bool:
        """Decode and handle one record until it is done; False when it was dead-lettered."""
        attempt = 0
        while True:
            attempt += 1
            consuming: otel_context.Context | None = None
            try:
                # decoding in the span: a record that does not decode has its span (with the
                # error), and its dead letter's span is that span's child
                with tracing.consume_span(record.topic, name, record.headers) as span:
                    consuming = trace.set_span_in_context(span)
                    consumed = _consumed(record)
                    span.set_attribute("mrm.event_type", consumed.envelope.event_type)
                    with structlog.contextvars.bound_contextvars(**_log_context(consumed)):
                        await self._timed(name, handler, consumed)
                return True
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - sorted by the failure policy right here
                if not await self._after_failure(
                    name, record, exc, attempt, alone=True, trace_parent=consuming
                ):
                    return False

    async def _settle(
        self,
        name: str,
        items: Sequence[T],
        handler: Callable[[Sequence[T]], Awaitable[Sequence[tuple[T, str]] | None]],
        record_of: Callable[[T], Record],
    ) -> None:
        """Run a batch handler on ``items`` until every item is handled or dead-lettered.

        An outage retries the batch in place; any other failure of a batch of several splits
        it in halves, each settled in turn, so poison records end up alone and are dead-lettered
        once each while the others are handled (the handlers are idempotent on event_id, so
        what a failed attempt had already written is absorbed)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                rejected = await self._timed(name, handler, items)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - sorted by the failure policy right here
                first = record_of(items[0])
                if len(items) == 1:
                    if await self._after_failure(name, first, exc, attempt, alone=True):
                        continue
                    return
                if await self._after_failure(name, first, exc, attempt, alone=False):
                    continue
                middle = len(items) // 2
                log.info("batch_split", handler=name, size=len(items), error=repr(exc))
                await self._settle(name, items[:middle], handler, record_of)
                await self._settle(name, items[middle:], handler, record_of)
                return
        for item, reason in rejected or ():
            self._count_failure(record_of(item).topic, Failure.DATA)
            await self._dead_letter(record_of(item), reason)

    async def _after_failure(
        self,
        name: str,
        record: Record,
        exc: Exception,
        attempt: int,
        *,
        alone: bool,
        trace_parent: otel_context.Context | None = None,
    ) -> bool:
        """Act on a failed attempt; True to try again. ``alone``: the attempt was at ``record``
        only (else it was at a batch, which the caller splits when this returns False);
        ``trace_parent``: the failed attempt's span, when it is no longer the current one."""
        kind = self.classify(exc)
        self._count_failure(record.topic, kind)
        if kind is Failure.OUTAGE or (
            alone and kind is Failure.UNKNOWN and attempt < self.max_attempts
        ):
            delay = self.backoff.delay(attempt)
            log.warning(
                "handler_failed_retrying",
                handler=name,
                topic=record.topic,
                kind=kind.value,
                attempt=attempt,
                retry_in_s=delay,
                error=repr(exc),
            )
            await asyncio.sleep(delay)
            return True
        if not alone:
            return False
        reason = reason_of(exc)
        if kind is Failure.UNKNOWN:
            reason = f"failed {attempt} times: {reason}"
        await self._dead_letter(record, reason, trace_parent=trace_parent)
        return False

    def _count_failure(self, topic: str, kind: Failure) -> None:
        self.metrics.consumer_failures.labels(topic=topic, kind=kind.value).inc()

    async def _dead_letter(
        self, record: Record, reason: str, *, trace_parent: otel_context.Context | None = None
    ) -> None:
        """Write ``record``'s dead letter, once; a broker that cannot take it now is an outage.

        Its publish span is a child of ``trace_parent`` (the consumer span that gave the record
        up; the current span, a batch's, otherwise) and links to the record's publish span."""
        # the value's hash tells a record from another at the same offset after a topic reset
        seen = (record.topic, record.partition, record.offset, hash(record.value))
        if seen in self._lettered:
            log.info(
                "dead_letter_repeat_skipped",
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                group=self.group_id,
            )
            return
        letter = dlq.letter_of(record, reason=reason, group=self.group_id)
        attempt = 0
        while True:
            attempt += 1
            try:
                truncated = await dlq.publish(
                    self.broker,
                    letter,
                    max_body_bytes=self.dead_letter_max_bytes,
                    trace_parent=trace_parent,
                    trace_link=tracing.context_of_headers(record.headers),
                )
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a dead letter is never dropped: retried
                self._count_failure(record.topic, Failure.OUTAGE)
                delay = self.backoff.delay(attempt)
                log.warning(
                    "dead_letter_failed_retrying",
                    topic=record.topic,
                    attempt=attempt,
                    retry_in_s=delay,
                    error=repr(exc),
                )
                await asyncio.sleep(delay)
        self._lettered[seen] = None
        if len(self._lettered) > DEAD_LETTER_MEMORY:
            self._lettered.popitem(last=False)
        self._count("dead_letters", record.topic)
        log.warning(
            "dead_lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            group=self.group_id,
            reason=reason[: dlq.MAX_REASON_CHARS],
            truncated_from=truncated,
        )

    async def _timed(self, name: str, handler: Callable[[Any], Awaitable[Any]], arg: Any) -> Any:
        started = time.perf_counter()
        try:
            return await handler(arg)
        finally:
            self.metrics.handler_seconds.labels(handler=name).observe(time.perf_counter() - started)


def _consumed(record: Record) -> Consumed:
    """The validated message of ``record``; ``EventRejected`` naming the field otherwise."""
    envelope, data = decode(record.value, topic=record.topic)
    return Consumed(
        envelope=envelope,
        data=data,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        record=record,
    )


def _record_of_consumed(consumed: Consumed) -> Record:
    if consumed.record is not None:
        return consumed.record
    # a message built without its record (tests): its envelope stands in for the bytes
    key = consumed.data.key()
    return ConsumerRecord(
        topic=consumed.topic,
        partition=consumed.partition,
        offset=consumed.offset,
        timestamp=0,
        timestamp_type=0,
        key=key.encode() if key else None,
        value=consumed.envelope.to_bytes(),
        checksum=None,
        serialized_key_size=-1,
        serialized_value_size=-1,
        headers=(),
    )


def _same(record: Record) -> Record:
    return record


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
