"""One trace from an HTTP request through the outbox and Kafka to another service's consumer,
and a dead letter's publish in the trace of the handling that gave its record up.

Planning answers ``POST /api/v1/plans`` and queues ``plan.created`` in its outbox; its relay
publishes it to the real test broker; a consumer of another group handles it. The spans are
read from the SDK's in-memory exporter: the consumer span belongs to the request's trace and
its parent is the publish span, whose parent is the request's server span."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import httpx
import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka_kit import start_group_at_end
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind

from services.planning.app import create_app
from services.planning.settings import PlanningSettings
from shared import dlq, topics, tracing
from shared.consumer import Consumed, EventConsumer, Rejected
from shared.events import new_envelope
from shared.events.ingest import SpendRecorded
from shared.kafka import make_broker
from shared.metrics import ServiceMetrics

TOKENS = {"t-admin": {"subject": "root", "role": "admin"}}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The spans the platform records during the test (then tracing is off again)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install_provider(provider)
    try:
        yield exporter
    finally:
        tracing.uninstall_provider()
        provider.shutdown()


async def wait_until(predicate, timeout_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_request_publish_and_consumer_share_one_trace(  # type: ignore[no-untyped-def]
    spans: InMemorySpanExporter, kafka_bootstrap: str, tmp_path, serve_app, unique_id: str
) -> None:
    settings = PlanningSettings(
        kafka_bootstrap=kafka_bootstrap,
        database_url=f"sqlite:///{tmp_path / 'planning.db'}",
        tokens=TOKENS,
        data_dir=tmp_path,
        currency="EUR",
    )
    handled: list[Consumed] = []
    request_id = f"req-{unique_id}"
    name = f"Traced {unique_id}"

    async def on_planning(consumed: Consumed) -> None:
        if getattr(consumed.data, "name", None) == name:
            handled.append(consumed)

    broker = make_broker(kafka_bootstrap, client_id="trace-test")
    EventConsumer(
        broker=broker, group_id=f"trace-{unique_id}", metrics=ServiceMetrics("trace_test")
    ).on(topics.PLANNING, handler=on_planning)
    body = {"name": name, "period_start": "2027-01-01", "period_end": "2027-12-31"}
    with serve_app(create_app(settings)) as running:
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as client:
            answer = await client.post(
                "/api/v1/plans",
                json=body,
                headers={"Authorization": "Bearer t-admin", "X-Request-ID": request_id},
            )
        assert answer.status_code == 201, answer.text
        assert answer.headers["X-Request-ID"] == request_id
        async with broker:
            await broker.start()
            await wait_until(lambda: len(handled) == 1)
            # the consumer span ends when the handler has returned
            await wait_until(
                lambda: any(s.kind is SpanKind.CONSUMER for s in mine(spans, request_id))
            )

    finished = mine(spans, request_id)
    request = _one(finished, SpanKind.SERVER, **{"http.route": "/api/v1/plans"})
    publish = _one(finished, SpanKind.PRODUCER, **{"mrm.event_type": "plan.created"})
    consume = _one(
        finished,
        SpanKind.CONSUMER,
        **{"mrm.event_type": "plan.created", "mrm.handler": "on_planning"},
    )
    assert request.name == "POST /api/v1/plans"
    assert publish.name == f"send {topics.PLANNING}"
    assert consume.name == f"process {topics.PLANNING}"
    assert request.attributes is not None and request.attributes["http.route"] == "/api/v1/plans"
    assert request.attributes["mrm.request_id"] == request_id
    assert publish.context.trace_id == request.context.trace_id
    assert publish.parent is not None and publish.parent.span_id == request.context.span_id
    assert consume.context.trace_id == request.context.trace_id
    assert consume.parent is not None and consume.parent.span_id == publish.context.span_id
    assert consume.attributes is not None and consume.attributes["mrm.event_type"] == "plan.created"
    # the header the consumer read is the publish span's W3C trace context
    headers = dict(handled[0].record.headers)  # type: ignore[union-attr]
    trace_id = format(request.context.trace_id, "032x")
    span_id = format(publish.context.span_id, "016x")
    flags = format(int(publish.context.trace_flags), "02x")
    assert headers["traceparent"].decode() == f"00-{trace_id}-{span_id}-{flags}"
    assert "_trace" not in json.loads(handled[0].record.value)  # type: ignore[union-attr]


def mine(exporter: InMemorySpanExporter, request_id: str) -> list[ReadableSpan]:
    """The finished spans of the trace of the request with ``request_id``."""
    finished = list(exporter.get_finished_spans())
    traces = {
        span.context.trace_id
        for span in finished
        if span.kind is SpanKind.SERVER
        and span.attributes is not None
        and span.attributes.get("mrm.request_id") == request_id
    }
    return [span for span in finished if span.context.trace_id in traces]


def _one(spans: list[ReadableSpan], kind: SpanKind, **attributes: str) -> ReadableSpan:
    found = [
        span
        for span in spans
        if span.kind is kind
        and all((span.attributes or {}).get(k) == v for k, v in attributes.items())
    ]
    assert len(found) == 1, [(s.kind, s.name, dict(s.attributes or {})) for s in spans]
    return found[0]


def dead_letters(bootstrap: str, topic: str, *, keys: set[bytes], expect: int) -> list[Any]:
    """The records of ``topic``'s DLQ with one of ``keys`` (waits for ``expect`` of them)."""
    consumer = KafkaConsumer(
        topics.dlq(topic),
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=30_000,
    )
    found = []
    try:
        for record in consumer:
            if record.key in keys:
                found.append(record)
            if len(found) >= expect:
                break
    finally:
        consumer.close()
    return found


def _span_id(traceparent: bytes) -> tuple[int, int]:
    """(trace id, span id) of a W3C ``traceparent`` header."""
    _version, trace_id, span_id, _flags = traceparent.decode().split("-")
    return int(trace_id, 16), int(span_id, 16)


async def test_a_dead_letter_is_published_in_a_span_of_the_consumer_that_gave_it_up(
    spans: InMemorySpanExporter, kafka_bootstrap: str, unique_id: str
) -> None:
    """Per record (``on``) the dead letter's publish span is the child of the consume span of
    the failed handling, itself the child of the record's publish span; in a batch
    (``on_batch``) it is the batch span's child. Either links to the record's publish span,
    and the DLQ record carries the dead-letter span's ``traceparent`` next to its own
    headers."""
    campaign = f"dl-{unique_id}"
    single, batched = f"dls-{unique_id}", f"dlb-{unique_id}"
    for group in (single, batched):
        start_group_at_end(kafka_bootstrap, group, [topics.SPEND])
    envelope = new_envelope(
        SpendRecorded(campaign_id=campaign, channel="search", amount=Decimal("1"), currency="USD"),
        source="test",
    )
    bodies = {b"rejected": envelope.to_bytes(), b"undecodable": b"{not json"}
    sent: dict[bytes, SpanContext] = {}
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        for key, body in bodies.items():
            headers: dict[str, str] = {}
            with tracing.publish_span(topics.SPEND, headers) as span:
                sent[key] = span.get_span_context()
            wire = [(name, value.encode()) for name, value in headers.items()]
            producer.send(topics.SPEND, key=key + campaign.encode(), value=body, headers=wire)
        producer.flush()
    finally:
        producer.close()

    async def on_spend(consumed: Consumed) -> None:
        if consumed.data.campaign_id == campaign:  # type: ignore[attr-defined]
            raise Rejected("data.currency: no rate configured")

    async def on_spends(batch: Sequence[Consumed]) -> None:
        return None

    broker = make_broker(kafka_bootstrap, client_id="trace-dlq")
    metrics = ServiceMetrics("trace_dlq")
    EventConsumer(broker=broker, group_id=single, metrics=metrics).on(
        topics.SPEND, handler=on_spend
    )
    EventConsumer(broker=broker, group_id=batched, metrics=metrics).on_batch(
        topics.SPEND, handler=on_spends
    )
    keys = {key + campaign.encode() for key in bodies}
    async with broker:
        await broker.start()
        # two from the per-record consumer, the undecodable one from the batch consumer
        letters = await asyncio.to_thread(
            dead_letters, kafka_bootstrap, topics.SPEND, keys=keys, expect=3
        )

    finished = {span.context.span_id: span for span in spans.get_finished_spans()}
    by_group: dict[str, dict[bytes, Any]] = {single: {}, batched: {}}
    for letter in letters:
        headers = dict(letter.headers)
        by_group[headers[dlq.CONSUMER_GROUP_HEADER].decode()][letter.key] = headers
    assert sorted(by_group[single]) == sorted(keys)
    assert list(by_group[batched]) == [b"undecodable" + campaign.encode()]

    for group, letters_of_group in by_group.items():
        for key, headers in letters_of_group.items():
            origin = sent[key.removesuffix(campaign.encode())]
            assert headers[dlq.ORIGINAL_TOPIC_HEADER] == topics.SPEND.encode()
            assert headers[dlq.ERROR_HEADER]
            trace_id, span_id = _span_id(headers["traceparent"])
            dead = finished[span_id]
            assert dead.kind is SpanKind.PRODUCER
            assert dead.name == f"send {topics.dlq(topics.SPEND)}"
            assert dead.attributes is not None
            assert dead.attributes["mrm.consumer_group"] == group
            assert [link.context.span_id for link in dead.links] == [origin.span_id]
            assert dead.parent is not None
            consumer_span = finished[dead.parent.span_id]
            assert consumer_span.kind is SpanKind.CONSUMER
            if group == single:
                # the record's trace: publish → process (failed) → dead-letter publish
                assert consumer_span.name == f"process {topics.SPEND}"
                assert consumer_span.parent is not None
                assert consumer_span.parent.span_id == origin.span_id
                assert trace_id == origin.trace_id
                assert not consumer_span.status.is_ok
            else:
                assert consumer_span.name == "process batch on_spends"
                assert trace_id == consumer_span.context.trace_id != origin.trace_id
