"""Fixtures of measurement's HTTP tests: the service on the session's broker and chDB engine,
reached through an authenticated client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any, Protocol

import httpx
import pytest

from services.measurement.app import create_app
from services.measurement.settings import MeasurementSettings


class MeasurementApi(Protocol):
    """Starts a measurement service and returns a client sending ``bearer``'s token."""

    def __call__(
        self,
        *,
        bearer: str,
        tokens: dict[str, dict[str, str]] | None = None,
        timeout: float = 30,
        own_monitor_group: bool = False,
        **settings: Any,
    ) -> httpx.Client: ...


@pytest.fixture
def measurement_api(kafka_bootstrap, chdb_url, tmp_path, serve_app) -> Iterator[MeasurementApi]:  # type: ignore[no-untyped-def]
    """Start the service with a test's settings: ``measurement_api(bearer=TOKEN, currency=...)``.

    ``tokens`` defaults to ``bearer`` alone, as viewer "vic"; ``own_monitor_group`` gives the
    service a monitor group of its own, so the previous test's replica, gone, is not waited for;
    any other keyword is a ``MeasurementSettings`` field. Service and client stop at teardown.
    """
    with ExitStack() as stack:

        def start(
            *,
            bearer: str,
            tokens: dict[str, dict[str, str]] | None = None,
            timeout: float = 30,
            own_monitor_group: bool = False,
            **settings: Any,
        ) -> httpx.Client:
            if own_monitor_group:
                settings["monitor_group"] = f"mrm-measurement-monitor-{uuid.uuid4().hex[:8]}"
            app = create_app(
                MeasurementSettings(
                    kafka_bootstrap=kafka_bootstrap,
                    clickhouse_url=chdb_url,
                    data_dir=tmp_path,
                    tokens=tokens or {bearer: {"subject": "vic", "role": "viewer"}},
                    **settings,
                )
            )
            running = stack.enter_context(serve_app(app))
            headers = {"Authorization": f"Bearer {bearer}"}
            return stack.enter_context(
                httpx.Client(base_url=running.url, timeout=timeout, headers=headers)
            )

        yield start
