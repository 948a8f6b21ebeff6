"""Helpers of the poison-message and DLQ-tool tests: the platform's four services in-process on
the real broker (each in a consumer group of its own, started at the end of its topics), a
producer that says where each record landed, the poison messages of the hardening list, and a
reader of dead letters by consumer group."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition
from kafka_kit import start_group_at_end

from shared import dlq, topics
from shared.events import EventData, new_envelope

ADMIN_TOKEN = "rel-admin"
TOKENS = {ADMIN_TOKEN: {"subject": "admin", "role": "admin"}}
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

READS: dict[str, tuple[str, ...]] = {
    "planning": (topics.KPI, topics.SPEND, topics.SALES),
    "execution": (topics.PLANNING, topics.SPEND, topics.TASKS),
    "measurement": (*topics.INGEST_TOPICS, topics.PLANNING),
    "notifier": (topics.PLANNING, topics.EXECUTION, topics.KPI),
}
"""The topics each service's consumer group reads (SPEC §2)."""


def readers_of(topic: str) -> set[str]:
    """The services whose consumer reads ``topic``."""
    return {service for service, read in READS.items() if topic in read}


@dataclass(frozen=True)
class Sent:
    """A record as produced, and where the broker put it."""

    name: str
    topic: str
    key: bytes | None
    value: bytes | None
    partition: int
    offset: int


class Producer:
    """Sends records as they are (no validation) and reports their partition and offset."""

    def __init__(self, bootstrap: str) -> None:
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap, acks="all", max_request_size=16 << 20
        )

    def send(self, topic: str, value: bytes | None, *, key: str, name: str = "") -> Sent:
        """Send one record and wait for the broker's acknowledgement."""
        meta = self._producer.send(topic, value=value, key=key.encode()).get(timeout=30)
        return Sent(name, topic, key.encode(), value, meta.partition, meta.offset)

    def event(self, data: EventData, *, name: str = "canary") -> Sent:
        """Send a valid event on its topic with its key."""
        value = new_envelope(data, source="reliability").to_bytes()
        return self.send(data.topic, value, key=data.key() or "", name=name)

    def close(self) -> None:
        self._producer.close()


def envelope_document(data: EventData) -> dict[str, Any]:
    """A valid envelope of ``data`` as a JSON document, to be spoilt."""
    return json.loads(new_envelope(data, source="reliability").to_bytes())


def spoilt(data: EventData, *, text_field: str) -> list[tuple[str, bytes | None]]:
    """The topic-independent poison messages of the hardening list, built from a valid event
    whose text field ``text_field`` carries the damage where a field is needed."""

    def with_data(**changes: Any) -> bytes:
        document = envelope_document(data)
        document["data"].update(changes)
        return json.dumps(document).encode()

    def with_envelope(**changes: Any) -> bytes:
        document = envelope_document(data)
        document.update(changes)
        return json.dumps(document).encode()

    nested = with_data(**{text_field: "@NESTED@"}).replace(b'"@NESTED@"', b"[" * 3000 + b"]" * 3000)
    return [
        ("1.5 MB value", with_data(**{text_field: "x" * 1_500_000})),
        ("5 MB value", with_data(**{text_field: "x" * 5_000_000})),
        ("JSON nested 3,000 deep", nested),
        ("schema_version 99", with_envelope(schema_version=99)),
        ("occurred_at as a number", with_envelope(occurred_at=1767225600)),
        ("NUL character", with_data(**{text_field: "sea\u0000rch"})),
    ]


def poison_with(data: EventData, **changes: Any) -> bytes:
    """A valid event's envelope with ``changes`` to its data (raw JSON values allowed)."""
    document = envelope_document(data)
    document["data"].update(changes)
    return json.dumps(document).encode()


@dataclass
class DeadLetters:
    """The dead letters of given consumer groups, by original record."""

    records: list[Any] = field(default_factory=list)

    def of(self, sent: Sent) -> list[Any]:
        """The dead letters written for ``sent`` (by any of the groups)."""
        return [
            r
            for r in self.records
            if r.headers[dlq.ORIGINAL_TOPIC_HEADER] == sent.topic
            and r.headers[dlq.ORIGINAL_PARTITION_HEADER] == str(sent.partition)
            and r.headers[dlq.ORIGINAL_OFFSET_HEADER] == str(sent.offset)
        ]


@dataclass(frozen=True)
class Letter:
    """A DLQ record with its headers as text."""

    key: bytes | None
    value: bytes
    headers: dict[str, str]


def read_dead_letters(bootstrap: str, dlq_topics: Iterable[str], groups: set[str]) -> DeadLetters:
    """Every record of ``dlq_topics`` written by one of ``groups`` (read to the current end)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_bytes=64 << 20,
        max_partition_fetch_bytes=16 << 20,
    )
    found = DeadLetters()
    try:
        partitions = [
            TopicPartition(name, p)
            for name in dlq_topics
            for p in consumer.partitions_for_topic(name) or ()
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(
            consumer.position(tp) < ends[tp] for tp in partitions
        ):
            for batch in consumer.poll(timeout_ms=200).values():
                for record in batch:
                    headers = dlq.header_map(record.headers)
                    if headers.get(dlq.CONSUMER_GROUP_HEADER) in groups:
                        found.records.append(Letter(record.key, record.value or b"", headers))
    finally:
        consumer.close()
    return found


def wait_for(probe: Callable[[], Any], *, timeout_s: float = 60.0, what: str = "") -> Any:
    """Poll ``probe`` until it returns something truthy; its last value on failure."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


class ServedApp:
    """An ASGI app served by uvicorn on a free loopback port in a thread of its own (the suite's
    ``serve_app`` fixture does the same per test; these services live for a whole module)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        from shared.embedded import free_port

        self.url = f"http://127.0.0.1:{free_port()}"
        port = int(self.url.rsplit(":", 1)[1])
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, lifespan="on", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServedApp:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the app did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@dataclass
class Platform:
    """The four services running in-process, with an HTTP client each."""

    bootstrap: str
    groups: dict[str, str]
    clients: dict[str, httpx.Client]
    producer: Producer

    def get(self, service: str, path: str, **params: Any) -> httpx.Response:
        return self.clients[service].get(path, params=params or None)


@contextmanager
def running_platform(*, bootstrap: str, chdb_url: str, data_dir: Path) -> Iterator[Platform]:
    """Start planning, execution, measurement and notifier (fresh stores, consumer groups of
    their own at the end of their topics, a local SMTP mailbox) and stop them on exit."""
    from mrm.mailbox import DevMailbox
    from services.execution.app import create_app as execution_app
    from services.execution.settings import ExecutionSettings
    from services.measurement.app import create_app as measurement_app
    from services.measurement.settings import MeasurementSettings
    from services.notifier.app import create_app as notifier_app
    from services.notifier.settings import NotifierSettings
    from services.planning.app import create_app as planning_app
    from services.planning.settings import PlanningSettings

    run = uuid.uuid4().hex[:8]
    groups = {service: f"rel-{service}-{run}" for service in READS}
    for service, group in groups.items():
        start_group_at_end(bootstrap, group, READS[service])
    common: dict[str, Any] = {
        "kafka_bootstrap": bootstrap,
        "tokens": TOKENS,
        "consumer_max_attempts": 3,
    }
    mailbox = DevMailbox(data_dir / "mail").start()
    apps = {
        "planning": planning_app(
            PlanningSettings(
                **common,
                data_dir=data_dir / "planning",
                consumer_group=groups["planning"],
            )
        ),
        "execution": execution_app(
            ExecutionSettings(
                **common,
                data_dir=data_dir / "execution",
                consumer_group=groups["execution"],
            )
        ),
        "measurement": measurement_app(
            MeasurementSettings(
                **common,
                data_dir=data_dir / "measurement",
                clickhouse_url=chdb_url,
                consumer_group=groups["measurement"],
            )
        ),
        "notifier": notifier_app(
            NotifierSettings(
                **common,
                data_dir=data_dir / "notifier",
                consumer_group=groups["notifier"],
                smtp_host="127.0.0.1",
                smtp_port=mailbox.port,
                poll_interval_s=0.2,
            )
        ),
    }
    for service in apps:
        (data_dir / service).mkdir(parents=True, exist_ok=True)
    producer = Producer(bootstrap)
    try:
        with ExitStack() as stack:
            runners = {service: ServedApp(app) for service, app in apps.items()}
            # started side by side: each lifespan waits on its own store and broker
            with ThreadPoolExecutor(len(runners)) as pool:
                started = {s: pool.submit(r.__enter__) for s, r in runners.items()}
            for service, future in started.items():
                if future.exception() is None:
                    stack.push(runners[service].__exit__)
            for future in started.values():
                future.result()
            clients = {
                service: stack.enter_context(
                    httpx.Client(base_url=runner.url, headers=AUTH, timeout=15)
                )
                for service, runner in runners.items()
            }
            yield Platform(bootstrap, groups, clients, producer)
    finally:
        producer.close()
        mailbox.stop()


def money(value: Any) -> Decimal:
    return Decimal(str(value))


TODAY = dt.date(2027, 3, 1)
