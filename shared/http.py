"""The HTTP shell every service shares: FastAPI app with /health, /ready, /metrics and errors.

Services add their own routers; the lifespan (their composition root) is passed in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from shared.errors import DomainError, NotFound
from shared.metrics import CONTENT_TYPE, ServiceMetrics

__all__ = ["DomainError", "NotFound", "create_service_app", "readiness_of"]

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]
READY_TIMEOUT_S = 1.5
"""Longest /ready waits for its checks before answering 503."""


def readiness_of(**probes: Callable[[], bool]) -> ReadinessCheck:
    """A readiness check running blocking ``probes`` concurrently in threads, keyed by name."""

    async def check() -> dict[str, bool]:
        results = await asyncio.gather(*(asyncio.to_thread(probe) for probe in probes.values()))
        return dict(zip(probes, results, strict=True))

    return check


def create_service_app(
    *,
    service: str,
    title: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    metrics: ServiceMetrics,
    tokens: dict[str, Any],
) -> FastAPI:
    """A FastAPI app with the platform's common endpoints and error format."""
    app = FastAPI(title=title, version="1", lifespan=lifespan)
    app.state.tokens = tokens
    app.state.metrics = metrics
    app.state.readiness = None

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok", "service": service}

    @app.get("/ready", tags=["ops"])
    async def ready() -> JSONResponse:
        """Readiness: the broker and the stores are reachable."""
        check: ReadinessCheck | None = app.state.readiness
        try:  # a probe that hangs must not hang the answer
            checks = (
                await asyncio.wait_for(check(), timeout=READY_TIMEOUT_S)
                if check is not None
                else {"starting": False}
            )
        except TimeoutError:
            checks = {"answered_in_time": False}
        ok = all(checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"])
    async def prometheus_metrics() -> Response:
        """Prometheus metrics."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.exception_handler(DomainError)
    async def domain_error(_request: Request, exc: DomainError) -> JSONResponse:
        loc = [exc.location, exc.field] if exc.field else []
        return JSONResponse(
            {"detail": [{"loc": loc, "field": exc.field, "msg": exc.message, "type": "domain"}]},
            status_code=exc.status_code,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "loc": list(error.get("loc", ())),
                "field": ".".join(str(part) for part in error.get("loc", ())[1:]) or None,
                "msg": error.get("msg"),
                "type": error.get("type"),
            }
            for error in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    return app
