"""Dead letters: what a consumer group could not process, kept verbatim with why and where from.

A dead letter is the original record — key and value bytes as the broker delivered them, never
re-serialised — on ``<topic>.dlq``, with headers that say why (``x-error``, naming the field),
where it came from (``x-original-topic``/``-partition``/``-offset``) and which consumer group
rejected it (``x-consumer-group``). Two groups reading one topic may each write one record for
the same message; the group header tells them apart, and ``mrm dlq replay`` sends a record back
to that group only (``x-replay-for-group``; other groups skip it). When traced, the record also
carries ``traceparent``/``tracestate``: the context of the span that dead-lettered it, for
finding the failed handling's trace (a replay does not send them on: it starts afresh).

A value too large for the DLQ is cut to ``max_body_bytes`` (and, if the broker still refuses
it, to a small preview) with ``x-original-size`` giving its size: the reason and the headers
are never lost and a dead letter never blocks its consumer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiokafka.errors
import kafka.errors
import structlog
from faststream.kafka import KafkaBroker
from opentelemetry.context import Context

from shared.topics import dlq
from shared.tracing import publish_span

log = structlog.get_logger(__name__)

ERROR_HEADER = "x-error"
ORIGINAL_TOPIC_HEADER = "x-original-topic"
ORIGINAL_PARTITION_HEADER = "x-original-partition"
ORIGINAL_OFFSET_HEADER = "x-original-offset"
CONSUMER_GROUP_HEADER = "x-consumer-group"
ORIGINAL_SIZE_HEADER = "x-original-size"
"""Set when the body was truncated: the original value's size in bytes."""
TOMBSTONE_HEADER = "x-original-tombstone"
"""Set when the original record had no value (a tombstone): the DLQ body is then empty."""
REPLAY_FOR_GROUP_HEADER = "x-replay-for-group"
"""On a replayed record: the only consumer group that processes it."""
REPLAY_COUNT_HEADER = "x-replay-count"
"""On a replayed record and its dead letter: how many times it was replayed."""
REPLAY_OF_HEADER = "x-replay-of"
"""On a replayed record and its dead letter: ``<dlq topic>:<partition>:<offset>`` it came from."""

MAX_REASON_CHARS = 2000
MAX_BODY_BYTES = 900_000
"""Largest dead-letter body sent whole: under the 1 MiB a Kafka producer and broker take by
default, with room for the headers."""
PREVIEW_BYTES = 64 * 1024
"""The body kept when the broker refuses even ``MAX_BODY_BYTES`` (a smaller topic limit)."""

_TOO_LARGE = (aiokafka.errors.MessageSizeTooLargeError, kafka.errors.MessageSizeTooLargeError)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record a consumer group rejected, and why."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    group: str
    replay_count: str | None = None
    replay_of: str | None = None

    def headers(self, *, original_size: int | None = None) -> dict[str, str]:
        """The DLQ record's headers; ``original_size`` when the body is truncated."""
        headers = {
            ERROR_HEADER: self.reason[:MAX_REASON_CHARS],
            ORIGINAL_TOPIC_HEADER: self.topic,
            ORIGINAL_PARTITION_HEADER: str(self.partition),
            ORIGINAL_OFFSET_HEADER: str(self.offset),
            CONSUMER_GROUP_HEADER: self.group,
        }
        if self.value is None:
            headers[TOMBSTONE_HEADER] = "true"
        if original_size is not None:
            headers[ORIGINAL_SIZE_HEADER] = str(original_size)
        if self.replay_count is not None:
            headers[REPLAY_COUNT_HEADER] = self.replay_count
        if self.replay_of is not None:
            headers[REPLAY_OF_HEADER] = self.replay_of
        return headers


def letter_of(record: Any, *, reason: str, group: str) -> DeadLetter:
    """The dead letter of a consumed record (an aiokafka ``ConsumerRecord``)."""
    headers = header_map(record.headers)
    return DeadLetter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        reason=reason,
        group=group,
        replay_count=headers.get(REPLAY_COUNT_HEADER),
        replay_of=headers.get(REPLAY_OF_HEADER),
    )


def header_map(headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """A record's headers as text (last value wins; undecodable bytes replaced)."""
    return {key: (value or b"").decode("utf-8", errors="replace") for key, value in (headers or ())}


def replay_target(headers: Iterable[tuple[str, bytes | None]] | None) -> str | None:
    """The consumer group a replayed record is meant for, or None for an ordinary record."""
    for key, value in headers or ():
        if key == REPLAY_FOR_GROUP_HEADER:
            return (value or b"").decode("utf-8", errors="replace")
    return None


async def publish(
    broker: KafkaBroker,
    letter: DeadLetter,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    trace_parent: Context | None = None,
    trace_link: Context | None = None,
) -> int | None:
    """Publish ``letter`` to its topic's DLQ; returns the original size when the body was cut.

    The publish has a producer span, a child of ``trace_parent`` (the consumer span that gave
    the record up; the current span by default) linked to ``trace_link`` (the record's own
    publish span), whose W3C context goes in the letter's ``traceparent``/``tracestate``.
    Broker outages raise (the caller retries them); a body the broker refuses as too large is
    cut to a preview and sent again."""
    value = letter.value or b""
    original_size: int | None = None
    if len(value) > max_body_bytes:
        original_size, value = len(value), value[:max_body_bytes]
    traced: dict[str, str] = {}
    with publish_span(dlq(letter.topic), traced, parent=trace_parent, link=trace_link) as span:
        span.set_attribute("mrm.consumer_group", letter.group)
        try:
            await _send(broker, letter, value, letter.headers(original_size=original_size), traced)
        except _TOO_LARGE:
            original_size = len(letter.value or b"")
            preview = value[: min(PREVIEW_BYTES, max_body_bytes)]
            log.warning(
                "dead_letter_truncated", topic=letter.topic, size=original_size, kept=len(preview)
            )
            headers = letter.headers(original_size=original_size)
            await _send(broker, letter, preview, headers, traced)
    return original_size


async def _send(
    broker: KafkaBroker,
    letter: DeadLetter,
    value: bytes,
    headers: Mapping[str, str],
    traced: Mapping[str, str],
) -> None:
    await broker.publish(
        value, topic=dlq(letter.topic), key=letter.key, headers={**headers, **traced}
    )
