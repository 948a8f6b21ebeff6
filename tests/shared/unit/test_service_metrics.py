"""Each service's /metrics, scraped before it has handled anything: the counters an alert or a
rate reads already exist at zero for the topics it publishes to and every route it serves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from services.execution import app as execution_app
from services.execution.settings import ExecutionSettings
from services.measurement import app as measurement_app
from services.measurement.settings import MeasurementSettings
from services.notifier import app as notifier_app
from services.notifier.settings import NotifierSettings
from services.planning import app as planning_app
from services.planning.settings import PlanningSettings
from shared import topics

STATUS_CLASSES = ("2xx", "4xx", "5xx")
COMMON = {"kafka_bootstrap": "127.0.0.1:1", "tokens": {}}


def _planning(data: Path) -> FastAPI:
    return planning_app.create_app(PlanningSettings(data_dir=data, **COMMON))


def _execution(data: Path) -> FastAPI:
    return execution_app.create_app(ExecutionSettings(data_dir=data, **COMMON))


def _measurement(data: Path) -> FastAPI:
    return measurement_app.create_app(MeasurementSettings(data_dir=data, **COMMON))


def _notifier(data: Path) -> FastAPI:
    return notifier_app.create_app(NotifierSettings(data_dir=data, **COMMON))


SERVICES: dict[str, tuple[ModuleType, Callable[[Path], FastAPI]]] = {
    "planning": (planning_app, _planning),
    "execution": (execution_app, _execution),
    "measurement": (measurement_app, _measurement),
    "notifier": (notifier_app, _notifier),
}


def _samples(exposition: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {
        frozenset(sample.labels.items()): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name
    }


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_the_first_scrape_has_every_published_topic_and_route_at_zero(
    service: str, tmp_path: Path
) -> None:
    module, build = SERVICES[service]
    app = build(tmp_path)
    # no lifespan (no broker, no store): nothing runs but the requests below
    client = TestClient(app, raise_server_exceptions=False)
    exposition = client.get("/metrics").text  # the app's first request

    published = _samples(exposition, "mrm_messages_out_total")
    assert published == {
        frozenset({("service", service), ("topic", topic)}): 0.0 for topic in module.PUBLISHES
    }
    requests = _samples(exposition, "mrm_http_requests_total")
    operations = [
        (method.upper(), path, operation)
        for path, item in app.openapi()["paths"].items()
        for method, operation in item.items()
    ]
    assert len(operations) > 5, service
    for method, path, _operation in operations:
        for status in STATUS_CLASSES:
            labels = {"service": service, "method": method, "route": path, "status": status}
            assert requests[frozenset(labels.items())] == 0.0, labels
    assert set(requests.values()) == {0.0}  # the scrape is counted when it has ended

    # a request to a route of an included router counts on a series that was at zero (the
    # store it may need is not there: 401 or 500, either is a class started at zero)
    method, path, _operation = next(op for op in operations if op[0] == "GET" and "{" in op[1])
    client.get(path.replace("{", "").replace("}", ""))
    after = _samples(client.get("/metrics").text, "mrm_http_requests_total")
    assert set(after) == set(requests)
    route = {("service", service), ("method", method), ("route", path)}
    assert sum(value for labels, value in after.items() if route <= labels) == 1.0


def test_each_platform_topic_is_published_by_one_service() -> None:
    """The services' ``PUBLISHES`` name every platform topic once (SPEC §3: one owner each)."""
    published = [topic for module, _build in SERVICES.values() for topic in module.PUBLISHES]
    assert sorted(published) == sorted(topics.PLATFORM_TOPICS)
