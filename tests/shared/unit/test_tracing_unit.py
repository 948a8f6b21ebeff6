"""Trace context in message headers: injected by publish spans, continued by consume spans,
linked by batch spans; nothing at all while tracing is off."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import tracing

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
