"""Fixtures shared by every test: the real embedded broker, SQL URLs (SQLite and PostgreSQL), the
session's one chDB engine."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine, text

from shared.embedded import EmbeddedBroker
from shared.kafka import ensure_topics
from shared.topics import all_topics_with_dlq

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

# The test broker is Tansu, which refuses idempotent producers (InitProducerId); services
# started by tests (in process or as children) produce without idempotence, as under `mrm up`.
os.environ.setdefault("MRM_KAFKA_IDEMPOTENCE", "false")


@pytest.fixture(scope="session", autouse=True)
def _migrate_on_start() -> Iterator[None]:
    """Services started by tests migrate their fresh databases at start (production runs
    ``mrm migrate`` first and a service refuses a database that is not at head; the tests of
    that refusal turn this off by name)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MRM_DATABASE_MIGRATE_ON_START", "true")
        yield


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real Kafka-protocol broker (Tansu) on a free loopback port, with all platform topics."""
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, all_topics_with_dlq(), partitions=3)
        yield broker.bootstrap


def _postgres_url() -> str | None:
    return os.environ.get("MRM_TEST_POSTGRES_URL")


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A fresh, empty database: a SQLite file, and PostgreSQL when MRM_TEST_POSTGRES_URL is set."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    base = _postgres_url()
    if not base:
        pytest.skip("MRM_TEST_POSTGRES_URL is not set")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base else "?"
    # the schema's name is also the connections' application_name: at teardown a connection
    # the test's app left open (a thread still inside a transaction when its event loop ended)
    # is ended, else DROP SCHEMA would wait for its locks for ever
    yield f"{base}{separator}options=-csearch_path%3D{schema}&application_name={schema}"
    with admin.begin() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = :name AND pid <> pg_backend_pid()"
            ),
            {"name": schema},
        )
        connection.execute(text("SET LOCAL lock_timeout = '30s'"))
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="session")
def chdb_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The single chDB engine path of this test session (chDB allows one path per process);
    isolate tests with unique ids."""
    return f"chdb://{tmp_path_factory.mktemp('chdb')}"


@pytest.fixture(scope="session")
def warehouse_client(chdb_url: str) -> Iterator[Client]:
    """A migrated warehouse client (database ``mrm``) on the session's chDB engine."""
    from services.measurement import warehouse

    client = warehouse.connect(chdb_url, database="mrm")
    warehouse.migrate(client, database="mrm")
    yield client
    client.close()


@pytest.fixture
def unique_id() -> str:
    """A short unique id, so tests sharing a broker or engine never see each other's data."""
    return uuid.uuid4().hex[:12]


class RunningApp:
    """An ASGI app served by uvicorn on a free loopback port in a background thread."""

    def __init__(self, app: object) -> None:
        import threading

        import uvicorn

        from shared.embedded import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_config=None,
                lifespan="on",
                access_log=False,
            )  # type: ignore[arg-type]
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> RunningApp:
        import time

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


@pytest.fixture
def serve_app():  # type: ignore[no-untyped-def]
    """Start an app (lifespan included) on a free port: ``with serve_app(app) as running``."""
    return RunningApp


def read_topic(bootstrap: str, topic: str, *, match, expect: int, timeout_s: float = 20.0) -> list:  # type: ignore[no-untyped-def]
    """Records of ``topic`` (from the start) for which ``match(record)`` holds; waits for
    ``expect`` of them or ``timeout_s``."""
    import time

    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=500,
    )
    found: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < expect and time.monotonic() < deadline:
            for record in consumer:
                if match(record):
                    found.append(record)
    finally:
        consumer.close()
    return found


@pytest.fixture
def topic_reader():  # type: ignore[no-untyped-def]
    """``topic_reader(bootstrap, topic, match=..., expect=n)`` → matching records."""
    return read_topic
