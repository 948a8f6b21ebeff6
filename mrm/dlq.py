"""``mrm dlq``: see what the consumers dead-lettered, and send it back once the cause is fixed.

Dead letters are read straight from the ``<topic>.dlq`` topics (no consumer group, nothing
committed). A replay republishes a record's original key and bytes to its original topic with
``x-replay-for-group`` naming the group that rejected it: that group processes it again, every
other group skips it, and the handlers' idempotency on ``event_id`` makes a replay of something
already applied harmless. If it fails again it is dead-lettered again, with its replay count.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TextIO

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from shared import dlq
from shared.kafka_config import PLAINTEXT, KafkaOptions
from shared.topics import ALL_TOPICS, DLQ_SUFFIX
from shared.topics import dlq as dlq_of


class DlqError(Exception):
    """A request the tool cannot carry out (unknown offset, truncated record …)."""


@dataclass(frozen=True)
class DeadLetterRecord:
    """One record of a dead-letter topic."""

    dlq_topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]

    @property
    def group(self) -> str:
        return self.headers.get(dlq.CONSUMER_GROUP_HEADER, "")

    @property
    def reason(self) -> str:
        return self.headers.get(dlq.ERROR_HEADER, "")

    @property
    def original_topic(self) -> str:
        return self.headers.get(dlq.ORIGINAL_TOPIC_HEADER) or self.dlq_topic.removesuffix(
            DLQ_SUFFIX
        )

    @property
    def size(self) -> int:
        """The original value's size (bigger than the body when the body was truncated)."""
        return int(self.headers.get(dlq.ORIGINAL_SIZE_HEADER, len(self.value)))

    @property
    def truncated(self) -> bool:
        return dlq.ORIGINAL_SIZE_HEADER in self.headers

    @property
    def time(self) -> str:
        moment = dt.datetime.fromtimestamp(self.timestamp_ms / 1000, tz=dt.UTC)
        return moment.isoformat(timespec="seconds")

    @property
    def ref(self) -> str:
        """``<dlq topic>:<partition>:<offset>``: where this record lives."""
        return f"{self.dlq_topic}:{self.partition}:{self.offset}"


def dlq_topic_name(topic: str) -> str:
    """``mrm.spend.v1`` or ``mrm.spend.v1.dlq`` → ``mrm.spend.v1.dlq``."""
    return topic if topic.endswith(DLQ_SUFFIX) else dlq_of(topic)


def read(
    bootstrap: str,
    topics: Iterable[str],
    *,
    group: str | None = None,
    timeout_s: float = 10.0,
    kafka: KafkaOptions = PLAINTEXT,
) -> list[DeadLetterRecord]:
    """Every record of the given dead-letter topics (of ``group`` only, when given)."""
    consumer = _reader(bootstrap, kafka)
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        records = list(_read_to_end(consumer, partitions, timeout_s=timeout_s))
    finally:
        consumer.close()
    return [r for r in records if group is None or r.group == group]


def fetch(
    bootstrap: str,
    dlq_topic: str,
    offset: int,
    *,
    partition: int = 0,
    timeout_s: float = 10.0,
    kafka: KafkaOptions = PLAINTEXT,
) -> DeadLetterRecord:
    """The record at ``offset`` of a dead-letter topic; ``DlqError`` when there is none."""
    consumer = _reader(bootstrap, kafka)
    try:
        tp = TopicPartition(dlq_topic, partition)
        if partition not in (consumer.partitions_for_topic(dlq_topic) or set()):
            raise DlqError(f"{dlq_topic}: no partition {partition}")
        consumer.assign([tp])
        start = consumer.beginning_offsets([tp])[tp]
        end = consumer.end_offsets([tp])[tp]
        if not start <= offset < end:
            raise DlqError(f"{dlq_topic}:{partition}: no offset {offset} (have {start}…{end - 1})")
        consumer.seek(tp, offset)
        for record in _read_to_end(consumer, [tp], timeout_s=timeout_s, seek=False):
            if record.offset == offset:
                return record
            break
    finally:
        consumer.close()
    raise DlqError(f"{dlq_topic}:{partition}: offset {offset} could not be read")


def replay(
    bootstrap: str,
    records: Iterable[DeadLetterRecord],
    *,
    group: str | None = None,
    kafka: KafkaOptions = PLAINTEXT,
) -> list[tuple[DeadLetterRecord, str]]:
    """Republish each record to its original topic for the group that rejected it (or
    ``group`` for a record that names none); returns (record, group) for those sent."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        max_request_size=16 << 20,
        **kafka.security.kafka_python(),
    )
    sent: list[tuple[DeadLetterRecord, str]] = []
    try:
        for record in records:
            target = record.group or group
            if not target:
                raise DlqError(f"{record.ref}: names no consumer group; pass --group")
            if group is not None and target != group:
                continue
            if record.truncated:
                raise DlqError(
                    f"{record.ref}: only the first {len(record.value)} of {record.size} bytes "
                    "were kept; it cannot be replayed"
                )
            tombstone = dlq.TOMBSTONE_HEADER in record.headers
            producer.send(
                record.original_topic,
                key=record.key,
                value=None if tombstone else record.value,
                headers=replay_headers(record, target),
            )
            sent.append((record, target))
        producer.flush(timeout=30)
    finally:
        producer.close()
    return sent


def replay_headers(record: DeadLetterRecord, group: str) -> list[tuple[str, bytes]]:
    """The headers of ``record``'s replay for ``group``: which group, how many times, from where.

    Nothing else of the dead letter's headers goes along: its ``traceparent`` is the span that
    dead-lettered it, long ended, and the replay's handling is a new trace, not a child of it."""
    count = int(record.headers.get(dlq.REPLAY_COUNT_HEADER, "0")) + 1
    return [
        (dlq.REPLAY_FOR_GROUP_HEADER, group.encode()),
        (dlq.REPLAY_COUNT_HEADER, str(count).encode()),
        (dlq.REPLAY_OF_HEADER, record.ref.encode()),
    ]


def _reader(bootstrap: str, kafka: KafkaOptions) -> KafkaConsumer:
    return KafkaConsumer(
        **kafka.security.kafka_python(),
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_bytes=64 << 20,
        max_partition_fetch_bytes=16 << 20,
    )


def _read_to_end(
    consumer: KafkaConsumer,
    partitions: list[TopicPartition],
    *,
    timeout_s: float,
    seek: bool = True,
) -> Iterator[DeadLetterRecord]:
    if not partitions:
        return
    consumer.assign(partitions)
    if seek:
        consumer.seek_to_beginning(*partitions)
    ends = consumer.end_offsets(partitions)
    deadline = time.monotonic() + timeout_s
    pending = {tp for tp in partitions if consumer.position(tp) < ends[tp]}
    while pending and time.monotonic() < deadline:
        for tp, batch in consumer.poll(timeout_ms=200).items():
            for record in batch:
                yield DeadLetterRecord(
                    dlq_topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    timestamp_ms=record.timestamp,
                    key=record.key,
                    value=record.value or b"",
                    headers=dlq.header_map(record.headers),
                )
            if consumer.position(tp) >= ends[tp]:
                pending.discard(tp)


# --- output -----------------------------------------------------------------------------------


def print_list(records: list[DeadLetterRecord], *, out: TextIO, as_json: bool = False) -> None:
    """One line per dead letter: where, which group, why, how big, when."""
    if as_json:
        for record in records:
            line = {
                "dlq_topic": record.dlq_topic,
                "partition": record.partition,
                "offset": record.offset,
                "group": record.group,
                "reason": record.reason,
                "size": record.size,
                "time": record.time,
                "original": f"{record.original_topic}:"
                f"{record.headers.get(dlq.ORIGINAL_PARTITION_HEADER, '?')}:"
                f"{record.headers.get(dlq.ORIGINAL_OFFSET_HEADER, '?')}",
            }
            out.write(json.dumps(line) + "\n")
        return
    if not records:
        out.write("no dead letters\n")
        return
    rows = [
        (
            record.dlq_topic,
            str(record.offset) if record.partition == 0 else f"{record.partition}:{record.offset}",
            record.group or "-",
            f"{record.size}{'*' if record.truncated else ''}",
            record.time,
            _one_line(record.reason, 90),
        )
        for record in records
    ]
    header = ("DLQ TOPIC", "OFFSET", "GROUP", "SIZE", "TIME", "REASON")
    widths = [max(len(row[i]) for row in (*rows, header)) for i in range(5)]
    for row in (header, *rows):
        cells = [cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True)]
        out.write("  ".join((*cells, row[5])).rstrip() + "\n")
    if any(record.truncated for record in records):
        out.write("* body truncated in the DLQ; SIZE is the original size\n")


def print_record(record: DeadLetterRecord, *, out: TextIO) -> None:
    """A dead letter's headers, key and body (as text when it is UTF-8)."""
    out.write(f"record: {record.ref}  ({record.time})\n")
    for name, value in sorted(record.headers.items()):
        out.write(f"{name}: {value}\n")
    key = record.key.decode("utf-8", errors="replace") if record.key is not None else "(none)"
    out.write(f"key: {key}\n")
    out.write(f"body: {len(record.value)} bytes\n\n")
    try:
        out.write(record.value.decode("utf-8"))
    except UnicodeDecodeError:
        out.write(repr(record.value))
    out.write("\n")


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def all_dlq_topics() -> list[str]:
    """The dead-letter topic of every platform topic."""
    return [dlq_of(topic) for topic in ALL_TOPICS]
