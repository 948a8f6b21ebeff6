"""Request ids, HTTP metrics by route template, and uvicorn's logs as JSON lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import structlog
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from shared.embedded import free_port
from shared.http import create_service_app
from shared.http_context import request_id_of
from shared.metrics import ServiceMetrics

ROOT = Path(__file__).resolve().parents[3]


@asynccontextmanager
async def _nothing(_app: FastAPI) -> AsyncIterator[None]:
    yield


def _app(metrics: ServiceMetrics) -> FastAPI:
    app = create_service_app(
        service="ctx", title="ctx", lifespan=_nothing, metrics=metrics, tokens={}
    )

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"thing_id": thing_id, **structlog.contextvars.get_contextvars()}

    return app


async def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_request_id_is_taken_echoed_and_bound() -> None:
    async with await _client(_app(ServiceMetrics("ctx"))) as client:
        given = await client.get("/things/a", headers={"X-Request-ID": "abc-123.x:y"})
        generated = await client.get("/things/b")
        unsafe = await client.get("/things/c", headers={"X-Request-ID": "a b\tc"})
    assert given.headers["X-Request-ID"] == "abc-123.x:y"
    assert given.json()["request_id"] == "abc-123.x:y"  # in every log line's context
    assert len(generated.headers["X-Request-ID"]) == 32
    assert generated.json()["request_id"] == generated.headers["X-Request-ID"]
    assert unsafe.headers["X-Request-ID"] != "a b\tc"
    assert len(unsafe.headers["X-Request-ID"]) == 32
    assert structlog.contextvars.get_contextvars().get("request_id") is None


def test_request_id_of_refuses_long_or_odd_ids() -> None:
    assert request_id_of([(b"x-request-id", b"r" * 128)]) == "r" * 128
    assert request_id_of([(b"x-request-id", b"r" * 129)]) != "r" * 129
    assert request_id_of([(b"x-request-id", b"a\nb")]) != "a\nb"


async def test_http_metrics_count_by_route_template_and_status_class() -> None:
    metrics = ServiceMetrics("ctx")
    async with await _client(_app(metrics)) as client:
        for thing in ("a", "b", "c"):
            assert (await client.get(f"/things/{thing}")).status_code == 200
        assert (await client.get("/nowhere")).status_code == 404
        assert (await client.post("/things/a")).status_code == 405
    value = metrics.registry.get_sample_value
    ok = {"service": "ctx", "method": "GET", "route": "/things/{thing_id}", "status": "2xx"}
    assert value("mrm_http_requests_total", ok) == 3
    missing = {"service": "ctx", "method": "GET", "route": "unmatched", "status": "4xx"}
    assert value("mrm_http_requests_total", missing) == 1
    wrong = {"service": "ctx", "method": "POST", "route": "/things/{thing_id}", "status": "4xx"}
    assert value("mrm_http_requests_total", wrong) == 1
    failed = {**ok, "status": "5xx"}
    assert value("mrm_http_requests_total", failed) == 0  # started at zero, never raised
    timed = {"service": "ctx", "method": "GET", "route": "/things/{thing_id}"}
    assert value("mrm_http_request_duration_seconds_count", timed) == 3


def _samples(exposition: str, name: str) -> dict[tuple[str, str, str], float]:
    """``name``'s samples in a Prometheus text exposition, by (method, route, status)."""
    return {
        (sample.labels["method"], sample.labels["route"], sample.labels["status"]): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name
    }


def test_every_route_is_at_zero_on_the_first_scrape() -> None:
    """Before any request but the scrape itself, each route template and method has its
    request counters at zero for every status class (HEAD, implied by GET, has none)."""
    with TestClient(_app(ServiceMetrics("ctx"))) as client:
        first = _samples(client.get("/metrics").text, "mrm_http_requests_total")
    for status in ("2xx", "4xx", "5xx"):
        assert first[("GET", "/things/{thing_id}", status)] == 0.0
        assert first[("GET", "/health", status)] == 0.0
        assert first[("GET", "/metrics", status)] == 0.0  # counted once the scrape has ended
    assert not [key for key in first if key[0] == "HEAD"]
    assert ("GET", "unmatched", "4xx") not in first  # no series until a request needs it


SERVER = textwrap.dedent(
    """
    import sys
    from contextlib import asynccontextmanager
    import structlog
    from shared.http import create_service_app
    from shared.logging import configure_logging
    from shared.metrics import ServiceMetrics
    from shared.runtime import serve

    configure_logging(service="logtest", json=True)

    @asynccontextmanager
    async def lifespan(app):
        yield

    app = create_service_app(
        service="logtest", title="t", lifespan=lifespan, metrics=ServiceMetrics("logtest"),
        tokens={},
    )

    @app.get("/hello")
    async def hello():
        structlog.get_logger("t").info("saying_hello")
        return {"ok": True}

    serve(app, host="127.0.0.1", port=int(sys.argv[1]))
    """
)


def test_uvicorn_and_service_logs_are_json_lines_with_the_request_id(tmp_path: Path) -> None:
    port = free_port()
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MRM_OTLP_ENDPOINT", None)
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    server = subprocess.Popen(
        [sys.executable, str(script), str(port)],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                assert server.poll() is None and time.monotonic() < deadline, "did not start"
                time.sleep(0.1)
        answer = httpx.get(
            f"http://127.0.0.1:{port}/hello", headers={"X-Request-ID": "req-42"}, timeout=5
        )
        assert answer.headers["X-Request-ID"] == "req-42"
    finally:
        server.send_signal(signal.SIGTERM)
        _out, err = server.communicate(timeout=30)
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # all JSON
    hello = [line for line in lines if line.get("event") == "saying_hello"]
    assert [(h["request_id"], h["service"]) for h in hello] == [("req-42", "logtest")]
    access = [line for line in lines if line.get("event") == "http_access"]
    mine = [line for line in access if line["path"] == "/hello"]
    assert len(mine) == 1
    assert mine[0]["request_id"] == "req-42"
    assert mine[0]["status"] == 200 and mine[0]["method"] == "GET"
    assert mine[0]["logger"] == "uvicorn.access" and mine[0]["service"] == "logtest"
    errors = [line for line in lines if line.get("logger") == "uvicorn.error"]
    assert any("Uvicorn running" in line["event"] for line in errors), errors
