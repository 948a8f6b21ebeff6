"""Fixtures shared by every test: the real embedded broker, SQL URLs (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from shared.embedded import EmbeddedBroker
from shared.kafka import ensure_topics
from shared.topics import all_topics_with_dlq


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
    yield f"{base}{separator}options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def unique_id() -> str:
    """A short unique id, so tests sharing a broker or engine never see each other's data."""
    return uuid.uuid4().hex[:12]
