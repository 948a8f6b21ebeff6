"""Fixtures of the measurement tests: one chDB engine per pytest session (chDB allows one path)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clickhouse_connect.driver.client import Client

from services.measurement import analytics


@pytest.fixture(scope="session")
def chdb_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The single chDB engine path of this test session; isolate tests with unique ids."""
    return f"chdb://{tmp_path_factory.mktemp('chdb')}"


@pytest.fixture(scope="session")
def analytics_client(chdb_url: str) -> Iterator[Client]:
    """A migrated analytics client on the session's chDB engine."""
    client = analytics.connect(chdb_url, database="mrm")
    analytics.migrate(client, database="mrm")
    yield client
    client.close()
