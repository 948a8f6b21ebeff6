"""Kafka plumbing shared by the services: the broker, publishing, readiness (topic creation:
``shared.topic_admin``; client options: ``shared.kafka_config``; dead letters: ``shared.dlq``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

import aiokafka.admin.client
import aiokafka.client
import structlog
from aiokafka.protocol.metadata import MetadataRequest
from faststream.kafka import KafkaBroker
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError
from opentelemetry.context import Context

from shared.dlq import ERROR_HEADER, ORIGINAL_TOPIC_HEADER  # noqa: F401 - former home
from shared.events import Envelope
from shared.kafka_config import PLAINTEXT, KafkaOptions
from shared.metrics import ServiceMetrics
from shared.topic_admin import ensure_topics  # also importable from here (its former home)
from shared.tracing import publish_span

log = structlog.get_logger(__name__)


def kafka_reachable(bootstrap: str, *, kafka: KafkaOptions = PLAINTEXT) -> bool:
    """Whether a broker answers a metadata request."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="mrm-ready",
            request_timeout_ms=2000,
            **kafka.security.kafka_python(),
        )
    except KafkaError:
        return False
    try:
        admin.list_topics()
        return True
    except KafkaError:
        return False
    finally:
        admin.close()


_NO_AUTO_CREATION: ContextVar[bool] = ContextVar("mrm_no_topic_autocreation", default=False)


class _MetadataRequest(MetadataRequest):
    """aiokafka's metadata request, asking the broker to auto-create the topics it names only
    outside ``without_topic_autocreation``."""

    def __init__(
        self, topics: list[str] | None = None, allow_auto_topic_creation: bool | None = None
    ) -> None:
        if allow_auto_topic_creation is None and _NO_AUTO_CREATION.get():
            allow_auto_topic_creation = False
        super().__init__(topics, allow_auto_topic_creation=allow_auto_topic_creation)


@contextlib.contextmanager
def without_topic_autocreation() -> Iterator[None]:
    """aiokafka clients started inside (and the tasks they start) never ask the broker to
    create a topic by naming it.

    aiokafka sends every metadata request with ``allow_auto_topic_creation`` set and offers no
    option against it; a broker that honours it (Tansu does, with 4 partitions and no DLQ)
    would re-create a lost topic with the wrong shape as soon as a producer or consumer asks
    about it. The platform creates its topics itself (``ensure_topics``, ``shared.watch``), so
    a missing topic stays missing until then. Clients outside keep aiokafka's behaviour."""
    aiokafka.client.MetadataRequest = _MetadataRequest  # type: ignore[misc]
    aiokafka.admin.client.MetadataRequest = _MetadataRequest  # type: ignore[misc]
    token = _NO_AUTO_CREATION.set(True)
    try:
        yield
    finally:
        _NO_AUTO_CREATION.reset(token)


def make_broker(bootstrap: str, *, client_id: str, kafka: KafkaOptions = PLAINTEXT) -> KafkaBroker:
    """A FastStream Kafka broker; subscribers are added by the service's composition root.

    Its producer waits for every in-sync replica and, with ``kafka.idempotence``, is
    idempotent (consumers dedup on event_id anyway; idempotence keeps retries from
    duplicating or reordering events within a partition)."""
    return KafkaBroker(
        bootstrap,
        client_id=client_id,
        security=kafka.security.faststream(),
        **kafka.producer(),
        logger=None,
        graceful_timeout=10.0,
    )


async def publish(
    broker: KafkaBroker,
    envelope: Envelope,
    *,
    topic: str,
    key: str | None,
    metrics: ServiceMetrics | None = None,
    trace_parent: Context | None = None,
) -> None:
    """Publish one envelope (acknowledged by the broker before returning), in a producer span
    whose W3C trace context goes in the message headers (``trace_parent``: the span's parent,
    e.g. the request that queued an outbox row; the current span otherwise)."""
    headers = {"content-type": "application/json"}
    with publish_span(topic, headers, parent=trace_parent, event_type=envelope.event_type):
        await broker.publish(
            envelope.to_bytes(),
            topic=topic,
            key=key.encode() if key is not None else None,
            headers=headers,
        )
    if metrics is not None:
        metrics.messages_out.labels(topic=topic).inc()


async def wait_for_kafka(
    bootstrap: str, *, timeout_s: float = 60.0, kafka: KafkaOptions = PLAINTEXT
) -> None:
    """Wait until the broker answers, so a service can start before its broker."""
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(kafka_reachable, bootstrap, kafka=kafka):
        if time.monotonic() > deadline:
            raise TimeoutError(f"Kafka at {bootstrap} did not answer within {timeout_s:.0f} s")
        await asyncio.sleep(0.5)


async def prepare_kafka(
    bootstrap: str, *, partitions: int | None = None, kafka: KafkaOptions = PLAINTEXT
) -> None:
    """Wait for the broker and create every platform topic (and DLQ) that is missing, shaped
    by ``kafka.topics`` (``partitions`` replaces its default count)."""
    from shared.topics import all_topics_with_dlq

    await wait_for_kafka(bootstrap, kafka=kafka)
    await asyncio.to_thread(
        ensure_topics, bootstrap, all_topics_with_dlq(), partitions=partitions, kafka=kafka
    )
