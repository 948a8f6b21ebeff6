"""Trace context in message headers: injected by publish spans, continued by consume spans,
linked by batch spans, carried by dead letters (not by their replays); nothing at all while
tracing is off."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiokafka.errors
import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mrm.dlq import DeadLetterRecord, replay_headers
from shared import dlq, tracing

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install_provider(provider)
    try:
        yield exporter
    finally:
        tracing.uninstall_provider()


def test_the_endpoint_setting_prefers_mrm_then_the_standard_one() -> None:
    assert tracing.otlp_endpoint({}) is None
    assert tracing.otlp_endpoint({"MRM_OTLP_ENDPOINT": "  "}) is None
    standard = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}
    assert tracing.otlp_endpoint(standard) == "http://c:4318"
    both = {**standard, "MRM_OTLP_ENDPOINT": "http://mrm:4318"}
    assert tracing.otlp_endpoint(both) == "http://mrm:4318"


def test_without_a_provider_nothing_is_injected_or_recorded() -> None:
    assert not tracing.recording()
    headers: dict[str, str] = {}
    with tracing.publish_span("mrm.spend.v1", headers):
        assert tracing.current_trace_headers() == {}
    assert headers == {}


def test_a_consume_span_is_the_child_of_the_publish_span_in_the_headers(
    spans: InMemorySpanExporter,
) -> None:
    headers: dict[str, str] = {"content-type": "application/json"}
    with tracing.publish_span("mrm.spend.v1", headers, event_type="spend.recorded") as sent:
        pass
    assert set(headers) == {"content-type", "traceparent"}
    record_headers = [(name, value.encode()) for name, value in headers.items()]
    with tracing.consume_span("mrm.spend.v1", "on_spend", record_headers) as handled:
        pass
    assert handled.get_span_context().trace_id == sent.get_span_context().trace_id
    finished = {span.name: span for span in spans.get_finished_spans()}
    consumer = finished["process mrm.spend.v1"]
    assert consumer.parent is not None
    assert consumer.parent.span_id == sent.get_span_context().span_id
    # a record without trace headers starts a trace of its own
    with tracing.consume_span("mrm.spend.v1", "on_spend", [("content-type", b"x")]) as alone:
        pass
    assert alone.get_span_context().trace_id != sent.get_span_context().trace_id


def test_a_batch_span_links_the_traces_of_its_records(spans: InMemorySpanExporter) -> None:
    senders = []
    records = []
    for _ in range(3):
        headers: dict[str, str] = {}
        with tracing.publish_span("mrm.leads.v1", headers) as sent:
            senders.append(sent.get_span_context())
        records.append(SimpleNamespace(headers=[(k, v.encode()) for k, v in headers.items()]))
    records.append(SimpleNamespace(headers=[]))
    with tracing.batch_span("on_leads", records):
        pass
    batch = next(s for s in spans.get_finished_spans() if s.name == "process batch on_leads")
    assert [link.context.span_id for link in batch.links] == [s.span_id for s in senders]
    assert batch.parent is None
    assert batch.attributes is not None
    assert batch.attributes["messaging.batch.message_count"] == 4


EXPORTING = """
import sys
from contextlib import asynccontextmanager
from fastapi.testclient import TestClient
from shared.http import create_service_app
from shared.metrics import ServiceMetrics

@asynccontextmanager
async def lifespan(app):
    yield

app = create_service_app(
    service="otlptest", title="t", lifespan=lifespan, metrics=ServiceMetrics("otlptest"),
    tokens={},
)

@app.get("/things/{thing_id}")
def thing(thing_id: str):
    return {"thing_id": thing_id}

with TestClient(app) as client:
    assert client.get("/things/1").status_code == 200
# the provider's exit hook flushes the batch to the collector
"""


def test_spans_are_exported_by_otlp_when_an_endpoint_is_configured(tmp_path: Path) -> None:
    """A service process with MRM_OTLP_ENDPOINT posts its spans to the collector's
    /v1/traces as OTLP protobuf; the span names the service and the route template."""
    received: list[tuple[str, str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    script = tmp_path / "export.py"
    script.write_text(EXPORTING)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    env["MRM_OTLP_ENDPOINT"] = f"http://127.0.0.1:{server.server_port}"
    try:
        run = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        server.shutdown()
    assert run.returncode == 0, run.stderr
    assert received, "no OTLP request reached the collector"
    path, content_type, body = received[0]
    assert body
    assert path == "/v1/traces"
    assert content_type == "application/x-protobuf"
    request = ExportTraceServiceRequest.FromString(body)
    resource = request.resource_spans[0].resource
    names = {a.key: a.value.string_value for a in resource.attributes}
    assert names["service.name"] == "mrm-otlptest"
    spans = [s.name for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert spans == ["GET /things/{thing_id}"]


class _SmallBroker:
    """A broker stand-in that refuses bodies above ``limit`` bytes as too large."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent: list[tuple[bytes, str, dict[str, str]]] = []

    async def publish(self, value: bytes, *, topic: str, key: bytes | None, headers: Any) -> None:
        if len(value) > self.limit:
            raise aiokafka.errors.MessageSizeTooLargeError()
        self.sent.append((value, topic, headers))


async def test_a_dead_letter_carries_its_publish_spans_context_with_its_own_headers(
    spans: InMemorySpanExporter,
) -> None:
    """The DLQ publish is a child of the given span, linked to the record's publish span; its
    ``traceparent`` rides along with the dead letter's headers, on the preview sent after the
    broker refused the whole body too."""
    record_headers: dict[str, str] = {}
    with tracing.publish_span("mrm.spend.v1", record_headers) as sent:
        pass
    letter = dlq.DeadLetter(
        topic="mrm.spend.v1",
        partition=1,
        offset=7,
        key=b"k",
        value=b"x" * (2 * dlq.PREVIEW_BYTES),
        reason="data.amount: must be positive",
        group="g",
    )
    broker = _SmallBroker(limit=dlq.PREVIEW_BYTES)
    with tracing.consume_span("mrm.spend.v1", "on_spend", []) as handling:
        parent = trace.set_span_in_context(handling)
    await dlq.publish(
        broker,  # type: ignore[arg-type]
        letter,
        trace_parent=parent,
        trace_link=tracing.context_of_carrier(record_headers),
    )
    [(body, topic, headers)] = broker.sent
    assert (len(body), topic) == (dlq.PREVIEW_BYTES, "mrm.spend.v1.dlq")
    assert headers[dlq.ERROR_HEADER] == "data.amount: must be positive"
    assert headers[dlq.ORIGINAL_SIZE_HEADER] == str(2 * dlq.PREVIEW_BYTES)
    dead = next(s for s in spans.get_finished_spans() if s.name == "send mrm.spend.v1.dlq")
    trace_id = format(dead.context.trace_id, "032x")
    flags = format(int(dead.context.trace_flags), "02x")
    assert headers["traceparent"] == f"00-{trace_id}-{dead.context.span_id:016x}-{flags}"
    assert dead.parent is not None and dead.parent.span_id == handling.get_span_context().span_id
    assert [link.context.span_id for link in dead.links] == [sent.get_span_context().span_id]


def test_a_replay_does_not_send_the_dead_letters_trace_context_on() -> None:
    """The dead letter's ``traceparent`` names a span long ended: the replay starts afresh."""
    record = DeadLetterRecord(
        dlq_topic="mrm.spend.v1.dlq",
        partition=0,
        offset=3,
        timestamp_ms=0,
        key=b"k",
        value=b"{}",
        headers={
            dlq.CONSUMER_GROUP_HEADER: "g",
            dlq.REPLAY_COUNT_HEADER: "1",
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        },
    )
    headers = dict(replay_headers(record, "g"))
    assert headers == {
        dlq.REPLAY_FOR_GROUP_HEADER: b"g",
        dlq.REPLAY_COUNT_HEADER: b"2",
        dlq.REPLAY_OF_HEADER: b"mrm.spend.v1.dlq:0:3",
    }
