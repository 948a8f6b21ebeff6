"""Fixtures of planning's HTTP tests: the service on a real broker and a real SQL store."""

from __future__ import annotations

import httpx
import pytest
from planning_kit import TOKENS

from services.planning.app import create_app
from services.planning.settings import PlanningSettings


@pytest.fixture
def planning(kafka_bootstrap, database_url, tmp_path, serve_app):  # type: ignore[no-untyped-def]
    """An HTTP client of a planning service (plans in EUR, a USD rate configured)."""
    settings = PlanningSettings(
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url,
        tokens=TOKENS,
        data_dir=tmp_path,
        currency="EUR",
        fx_rates={"USD": "0.5"},
    )
    with (
        serve_app(create_app(settings)) as running,
        httpx.Client(base_url=running.url, timeout=10) as client,
    ):
        yield client
