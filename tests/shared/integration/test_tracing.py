"""One trace from an HTTP request through the outbox and Kafka to another service's consumer.

Planning answers ``POST /api/v1/plans`` and queues ``plan.created`` in its outbox; its relay
publishes it to the real test broker; a consumer of another group handles it. The spans are
read from the SDK's in-memory exporter: the consumer span belongs to the request's trace and
its parent is the publish span, whose parent is the request's server span."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.planning.app import create_app
from services.planning.settings import PlanningSettings
from shared import topics, tracing
from shared.consumer import Consumed, EventConsumer
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
