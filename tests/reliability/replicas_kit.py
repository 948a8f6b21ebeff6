"""Helpers of the two-replica tests: polling, reading a whole topic, counting publishes.

``read_to_end`` reads every record a topic holds at the time of the call, so a test that first
waits until the services are done publishing (their outbox empty, a monitor round over) can
count *records*, not only distinct event ids: a duplicate publish shows as a second record.
"""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, TypeVar

from aiosmtpd.controller import Controller
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import Engine, Table, func, select

from shared.embedded import free_port

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], *, timeout_s: float = 60.0, what: str) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.1)


def start_replicas(stack: ExitStack, serve_app: Any, apps: Sequence[Any]) -> list[Any]:
    """Serve ``apps`` (``serve_app`` of tests/conftest.py) side by side, started at once (each
    start waits for its broker's consumer-group join); ``stack`` stops them."""
    running = [serve_app(app) for app in apps]
    with ThreadPoolExecutor(len(running)) as pool:
        starts = [pool.submit(replica.__enter__) for replica in running]
    for replica, start in zip(running, starts, strict=True):
        if start.exception() is None:
            stack.push(replica.__exit__)
    for start in starts:
        start.result()  # the first failure, once every started replica will be stopped
    return running


def read_to_end(bootstrap: str, topic: str, *, match: Callable[[Any], bool]) -> list[Any]:
    """Every record of ``topic`` published before this call for which ``match`` holds.

    The end offsets are asked first; a partition is read until the consumer's position passes
    its end. Tansu reports a partition's end as the first offset of its last record batch + 1,
    and a fetch returns whole batches (``max_poll_records`` is large, so one poll hands all of
    a fetched batch over): once the position passes that offset, the last batch is read whole.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        max_poll_records=1_000_000,
    )
    try:
        partitions = [
            TopicPartition(topic, number)
            for number in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = consumer.end_offsets(partitions)
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        found: list[Any] = []
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end")
            for records in consumer.poll(timeout_ms=500).values():
                found += [record for record in records if match(record)]
        return found
    finally:
        consumer.close()


def envelope(record: Any) -> dict[str, Any]:
    """The JSON envelope of a record."""
    return json.loads(record.value)


def containing(*needles: str) -> Callable[[Any], bool]:
    """A record matcher: the value mentions one of ``needles`` (e.g. a test's unique id)."""
    encoded = [needle.encode() for needle in needles]
    return lambda record: record.value is not None and any(n in record.value for n in encoded)


@dataclass(frozen=True)
class Publishes:
    """What a topic holds for a test: records and distinct event ids, per event type."""

    records: Sequence[dict[str, Any]]

    @classmethod
    def of(cls, records: Iterable[Any]) -> Publishes:
        return cls(records=[envelope(record) for record in records])

    def of_type(self, event_type: str) -> Publishes:
        """Only the records of one event type."""
        return Publishes([r for r in self.records if r["event_type"] == event_type])

    @property
    def event_ids(self) -> set[str]:
        return {r["event_id"] for r in self.records}

    def duplicates(self) -> dict[str, int]:
        """event_id → number of records, for the ids published more than once."""
        counts = Counter(r["event_id"] for r in self.records)
        return {event_id: n for event_id, n in counts.items() if n > 1}

    def per(self, *fields: str) -> Counter[tuple[Any, ...]]:
        """Number of records per value of ``data`` fields (the cause of an event)."""
        return Counter(tuple(r["data"].get(field) for field in fields) for r in self.records)

    def __len__(self) -> int:
        return len(self.records)


def unpublished(engine: Engine, outbox: Table) -> int:
    """Rows of ``outbox`` not marked published yet."""
    with engine.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
        ).scalar_one()


class FlakySmtp:
    """A real SMTP server (aiosmtpd) on a loopback port that answers the first ``failures``
    messages with a temporary error (451, so the notifier retries) and keeps the others."""

    def __init__(self, *, failures: int) -> None:
        self.failures = failures
        self.refused = 0
        self.messages: list[email.message.EmailMessage] = []
        self.lock = threading.Lock()
        self.host, self.port = "127.0.0.1", free_port()
        self._controller = Controller(self, hostname=self.host, port=self.port)

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        with self.lock:
            if self.refused < self.failures:
                self.refused += 1
                return "451 4.3.0 try again later"
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 OK"

    def received(self) -> list[email.message.EmailMessage]:
        """Messages accepted so far."""
        with self.lock:
            return list(self.messages)

    def __enter__(self) -> FlakySmtp:
        self._controller.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._controller.stop()
