"""Helpers of the HTTP reliability tests: the four services in-process, tokens for every role,
and a snapshot of every row a service's store holds (so a test can say "nothing was written")."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, MetaData, func, select

from shared.embedded import EmbeddedBroker
from shared.kafka import ensure_topics
from shared.topics import all_topics_with_dlq

ROLES = ("admin", "cmo", "manager", "executor", "viewer")
TOKENS: dict[str, dict[str, str]] = {
    **{f"t-{role}": {"subject": f"{role}-user", "role": role} for role in ROLES},
    "t-other-executor": {"subject": "other-executor", "role": "executor"},
}
SQL_SERVICES = ("planning", "execution", "notifier")


@pytest.fixture
def own_broker() -> Iterator[str]:
    """A broker of one test alone (Tansu starts in a fraction of a second): no other test's
    events reach the service's consumers while its rows are counted. One partition per topic,
    so the events a test publishes are consumed in order."""
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, all_topics_with_dlq(), partitions=1)
        yield broker.bootstrap


def auth(role: str) -> dict[str, str]:
    """The Authorization header of the test user holding ``role``."""
    return {"Authorization": f"Bearer t-{role}"}


def subject(role: str) -> str:
    """The subject (user id) behind the test token of ``role``."""
    return f"{role}-user"


@dataclass
class Service:
    """A running service app with a client and, for SQL services, its engine and metadata."""

    name: str
    app: FastAPI
    client: Any  # a TestClient or an httpx.Client on a served app
    engine: Engine | None
    metadata: MetaData | None
    port: int | None = None

    def rows(self) -> dict[str, int]:
        """Row counts of every table of the service's store (outbox and inbox included). The
        relay's lease row is left out: the relay writes it on its first round, whenever that
        comes, and it records no request's effect."""
        if self.engine is None or self.metadata is None:
            return {}
        with self.engine.connect() as connection:
            return {
                table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
                for table in self.metadata.sorted_tables
                if not table.name.endswith("_outbox_lease")
            }


def build_app(
    name: str,
    *,
    bootstrap: str,
    database_url: str,
    chdb_url: str | None,
    data_dir: Path,
    **extra: Any,
) -> FastAPI:
    """The app of service ``name`` on the given broker and store, with the test tokens."""
    common: dict[str, Any] = {
        "kafka_bootstrap": bootstrap,
        "tokens": TOKENS,
        "data_dir": data_dir,
        "currency": "EUR",
        **extra,
    }
    if name == "planning":
        from services.planning.app import create_app as planning_app
        from services.planning.settings import PlanningSettings

        return planning_app(PlanningSettings(database_url=database_url, **common))
    if name == "execution":
        from services.execution.app import create_app as execution_app
        from services.execution.settings import ExecutionSettings

        return execution_app(ExecutionSettings(database_url=database_url, **common))
    if name == "notifier":
        from services.notifier.app import create_app as notifier_app
        from services.notifier.settings import NotifierSettings

        return notifier_app(NotifierSettings(database_url=database_url, **common))
    if name == "measurement":
        from services.measurement.app import create_app as measurement_app
        from services.measurement.settings import MeasurementSettings

        assert chdb_url is not None, "measurement needs a chDB URL"
        return measurement_app(MeasurementSettings(clickhouse_url=chdb_url, readers=0, **common))
    raise ValueError(name)


def store_of(name: str, app: FastAPI) -> tuple[Engine | None, MetaData | None]:
    """The engine (from the running app) and table metadata of a SQL service's store."""
    if name == "planning":
        from services.planning import store as planning_store

        return app.state.store.engine, planning_store.Base.metadata
    if name == "execution":
        from services.execution import store as execution_store

        return app.state.execution.engine, execution_store.Base.metadata
    if name == "notifier":
        from services.notifier import store as notifier_store

        return app.state.engine, notifier_store.Base.metadata
    return None, None


@contextmanager
def running(
    name: str,
    *,
    bootstrap: str,
    database_url: str,
    chdb_url: str | None = None,
    data_dir: Path,
    **extra: Any,
) -> Iterator[Service]:
    """Service ``name`` in-process (lifespan run by the test client) on a real broker and store."""
    app = build_app(
        name,
        bootstrap=bootstrap,
        database_url=database_url,
        chdb_url=chdb_url,
        data_dir=data_dir,
        **extra,
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        engine, metadata = store_of(name, app)
        yield Service(name=name, app=app, client=client, engine=engine, metadata=metadata)


@contextmanager
def serving(
    name: str,
    *,
    serve_app: Any,
    bootstrap: str,
    database_url: str,
    chdb_url: str | None = None,
    data_dir: Path,
    **extra: Any,
) -> Iterator[Service]:
    """Service ``name`` served by uvicorn on a free loopback port (``serve_app`` fixture), with
    an HTTP client on it; ``service.port`` is where it listens."""
    app = build_app(
        name,
        bootstrap=bootstrap,
        database_url=database_url,
        chdb_url=chdb_url,
        data_dir=data_dir,
        **extra,
    )
    with serve_app(app) as served, httpx.Client(base_url=served.url, timeout=30) as client:
        engine, metadata = store_of(name, app)
        yield Service(
            name=name, app=app, client=client, engine=engine, metadata=metadata, port=served.port
        )


def error_fields(response: Any) -> set[str]:
    """The fields a 4xx JSON error body names (``field`` or the tail of ``loc``)."""
    fields: set[str] = set()
    for item in response.json().get("detail", []):
        if item.get("field"):
            fields.add(str(item["field"]))
        loc = [str(part) for part in item.get("loc", [])]
        if len(loc) > 1:
            fields.add(".".join(loc[1:]))
            fields.add(loc[-1])
    return fields


def make_plan_and_campaign(client: Any, *, name: str) -> tuple[str, str]:
    """A draft plan for 2027 with one search campaign; returns (plan_id, campaign_id)."""
    plan = client.post(
        "/api/v1/plans",
        json={"name": name, "period_start": "2027-01-01", "period_end": "2027-12-31"},
        headers=auth("manager"),
    )
    assert plan.status_code == 201, plan.text
    plan_id = plan.json()["plan_id"]
    campaign = client.post(
        f"/api/v1/plans/{plan_id}/campaigns",
        json={
            "name": f"{name} search",
            "channel": "search",
            "owner": subject("executor"),
            "budget": "1000.00",
            "start_date": "2027-03-01",
            "end_date": "2027-05-31",
        },
        headers=auth("manager"),
    )
    assert campaign.status_code == 201, campaign.text
    return plan_id, campaign.json()["campaign_id"]


def unchanged(service: Service) -> Callable[[], None]:
    """Take a snapshot of the service's rows now; the returned check asserts they are the same."""
    before = service.rows()

    def check() -> None:
        after = service.rows()
        assert after == before, f"rows changed: {before} → {after}"

    return check
