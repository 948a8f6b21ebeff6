"""The HTTP shell every service shares: FastAPI app with /health, /ready, /metrics and errors.

Services add their own routers; the lifespan (their composition root) is passed in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.errors import DomainError, NotFound
from shared.http_context import add_request_context
from shared.metrics import CONTENT_TYPE, ServiceMetrics
from shared.openapi import declare_error_responses
from shared.tracing import configure_tracing

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DomainError",
    "NotFound",
    "create_service_app",
    "readiness_of",
]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
"""The largest request body a service reads (``MRM_HTTP_MAX_BODY_BYTES``): JSON bodies of the
APIs are a few kilobytes; a larger one is refused with 413 before it is parsed."""

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]
READY_TIMEOUT_S = 1.5
"""Longest /ready waits for its checks before answering 503."""


def readiness_of(**probes: Callable[[], bool]) -> ReadinessCheck:
    """A readiness check running blocking ``probes`` concurrently in threads, keyed by name."""

    async def check() -> dict[str, bool]:
        results = await asyncio.gather(*(asyncio.to_thread(probe) for probe in probes.values()))
        return dict(zip(probes, results, strict=True))

    return check


def _too_large(max_body_bytes: int) -> JSONResponse:
    message = f"the request body exceeds {max_body_bytes} bytes"
    return JSONResponse(
        {"detail": [{"loc": ["body"], "field": None, "msg": message, "type": "too_large"}]},
        status_code=413,
    )


class DeclaredLengthLimit:
    """Answers 413 (JSON) at once to a request whose ``Content-Length`` announces more than the
    limit, before any route runs; Starlette's limit inside it covers chunked bodies, failing
    the route's read of the body with a 413 that the error handler renders."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            declared = Headers(scope=scope).get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_body_bytes:
                await _too_large(self.max_body_bytes)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_service_app(
    *,
    service: str,
    title: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    metrics: ServiceMetrics,
    tokens: dict[str, Any],
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """A FastAPI app with the platform's common endpoints and error format.

    Request bodies are counted while they stream in (Starlette's body-limit middleware, for a
    declared ``Content-Length`` and for chunked bodies alike): past ``max_body_bytes`` the
    request gets 413 with a JSON body before anything parses it.
    """
    app = FastAPI(title=title, version="1", lifespan=lifespan)
    # Starlette's limit counts the bytes as they stream in (declared or chunked) and fails the
    # route's read of the body; the declared length is judged first, before any route runs
    app.add_middleware(RequestBodyLimitMiddleware, max_body_size=max_body_bytes)
    app.add_middleware(DeclaredLengthLimit, max_body_bytes=max_body_bytes)
    configure_tracing(service=service)  # exports only when an OTLP endpoint is configured
    add_request_context(app, metrics=metrics)  # X-Request-ID, HTTP metrics, server span
    declare_error_responses(app)  # 401/403/404/409/422 with the real body, on every route
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
        error: dict[str, object] = {
            "loc": loc,
            "field": exc.field,
            "msg": exc.message,
            "type": "domain",
        }
        if exc.context:
            error["ctx"] = exc.context
        return JSONResponse({"detail": [error]}, status_code=exc.status_code)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 413:
            return _too_large(max_body_bytes)
        if isinstance(exc.detail, str):  # Starlette's own (unknown path, method): same shape
            body: dict[str, object] = {
                "detail": [{"loc": [], "field": None, "msg": exc.detail, "type": "http"}]
            }
            return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
        return await http_exception_handler(request, exc)

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
