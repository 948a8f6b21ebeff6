"""What every HTTP request carries through a service: a request id, a trace span, metrics.

* ``X-Request-ID``: taken from the request when it is a sane token (letters, digits, ``._:-``,
  at most 128 characters), generated otherwise; echoed in the response and bound into
  structlog's context, so every log line written while the request is handled carries it
  (uvicorn's access line too: it is written inside the request's context).
* Tracing: OpenTelemetry's ASGI middleware opens a server span per request (continuing a
  ``traceparent`` the caller sent); this middleware names it after the route template
  (``POST /api/v1/plans``) once routing has matched.
* Metrics: ``mrm_http_requests_total{method,route,status}`` and
  ``mrm_http_request_duration_seconds{method,route}``, by route template, never by raw path
  (ids would make a series per resource), and by status class (``2xx``, ``4xx``, ``5xx``),
  never by code: an error-rate alert reads one series per route, and each route's counters
  start at zero for every class when the app starts (the exact code is in the access log and
  the span).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import structlog
from fastapi.routing import iter_route_contexts
from opentelemetry import trace
from starlette.datastructures import MutableHeaders
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import tracing
from shared.metrics import ServiceMetrics, status_class

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
UNMATCHED_ROUTE = "unmatched"
"""The route label of a request no route matched (404s of unknown paths share one series)."""
UNTRACED_PATHS = "/health,/ready,/metrics"
"""Probe and scrape endpoints: polled every few seconds, they would drown the traces."""


def request_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's request id when it is a sane token, a new one otherwise."""
    for name, value in headers:
        if name.lower() == b"x-request-id":
            candidate = value.decode("latin-1").strip()
            if _SANE_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


def route_of(scope: Scope) -> str:
    """The route template that handled the request (``/api/v1/plans/{plan_id}``)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else UNMATCHED_ROUTE


def route_templates(routes: Sequence[BaseRoute]) -> Iterator[tuple[str, str]]:
    """(method, route template) of every HTTP route, those of included routers too, as
    ``route_of`` names them (``HEAD``, implied by ``GET``, left out)."""
    for route in iter_route_contexts(routes):
        for method in sorted(route.methods or ()):
            if route.path and method != "HEAD":
                yield method, route.path


class RequestContext:
    """Request id, span name and HTTP metrics of each request (pure ASGI: no body buffering).

    Built when the app starts (Starlette builds its middleware then, after every router is
    included), it starts the request counters of ``routes`` at zero."""

    def __init__(
        self, app: ASGIApp, *, metrics: ServiceMetrics, routes: Sequence[BaseRoute] = ()
    ) -> None:
        self.app = app
        self.metrics = metrics
        metrics.serving(route_templates(routes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope.get("headers", []))
        method = scope.get("method", "GET")
        started = time.perf_counter()
        status = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
                # the server span ends with the response's last bytes: name it now that
                # routing has matched
                span = trace.get_current_span()
                if span.is_recording():
                    route = route_of(scope)
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                    span.set_attribute("mrm.request_id", request_id)
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                route = route_of(scope)
                self.metrics.http_requests.labels(
                    method=method, route=route, status=status_class(status["code"])
                ).inc()
                self.metrics.http_seconds.labels(method=method, route=route).observe(
                    time.perf_counter() - started
                )


def add_request_context(app: Any, *, metrics: ServiceMetrics) -> None:
    """Install the request context and, outside it, the OpenTelemetry server span (when
    traces are recorded: ``shared.tracing.configure_tracing``)."""
    # the router's list itself: the service includes its routers after this call
    app.add_middleware(RequestContext, metrics=metrics, routes=app.router.routes)
    if tracing.recording():  # without a tracer provider, no span is worth its cost
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        app.add_middleware(
            OpenTelemetryMiddleware,
            excluded_urls=UNTRACED_PATHS,
            exclude_spans=["receive", "send"],
            tracer_provider=tracing.provider(),
        )
