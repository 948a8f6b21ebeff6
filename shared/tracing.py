"""OpenTelemetry tracing: HTTP requests, Kafka publishes and consumer handling in one trace.

The W3C trace context (``traceparent``, ``tracestate``) travels in Kafka message headers from
the publisher to the consumer, and through the outbox (stored beside the envelope, stripped
before it is published), so a request that queues an event and the consumer that handles it
share a trace: request span → publish span → consumer span. A dead letter's publish span is
the child of the consumer span that gave its record up (``traceparent`` on the DLQ record).

Spans are exported by OTLP/HTTP when ``MRM_OTLP_ENDPOINT`` (or the standard
``OTEL_EXPORTER_OTLP_ENDPOINT``) is set. Otherwise no provider is installed: the API's no-op
tracer creates no recording spans and nothing is exported, which costs next to nothing.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind

TRACER_NAME = "mrm"
TRACE_KEY = "_trace"
"""Where an outbox row's payload keeps the trace context of the transaction that queued it."""
TRACE_HEADERS = ("traceparent", "tracestate")

_installed: dict[str, Any] = {}


def otlp_endpoint(environ: Mapping[str, str] | None = None) -> str | None:
    """The OTLP endpoint configured (``MRM_OTLP_ENDPOINT`` first), or None."""
    env = os.environ if environ is None else environ
    endpoint = env.get("MRM_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return endpoint.strip() or None if endpoint else None


def configure_tracing(*, service: str, endpoint: str | None = None) -> bool:
    """Install an SDK tracer provider exporting to OTLP when an endpoint is configured; True
    if one is installed. Called by every service app (``shared.http``); acts once a process."""
    endpoint = endpoint or otlp_endpoint()
    if not endpoint or recording():
        return recording()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    url = endpoint.rstrip("/")
    if not url.endswith("/v1/traces"):
        url = f"{url}/v1/traces"
    provider = TracerProvider(resource=Resource.create({"service.name": f"mrm-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    trace.set_tracer_provider(provider)
    atexit.register(provider.shutdown)  # the spans still queued go out on exit
    install_provider(provider)
    return True


def install_provider(provider: trace.TracerProvider) -> None:
    """Record spans with ``provider`` from now on (``configure_tracing``; tests give theirs)."""
    _installed["provider"] = provider


def uninstall_provider() -> None:
    """Stop recording spans (apps built afterwards add no tracing middleware)."""
    _installed.pop("provider", None)


def provider() -> trace.TracerProvider | None:
    """The tracer provider spans are recorded with, or None when tracing is off."""
    return _installed.get("provider")


def recording() -> bool:
    """Whether spans are recorded at all (a tracer provider is installed)."""
    return "provider" in _installed


def tracer() -> trace.Tracer:
    """The platform's tracer (a no-op one while no provider is installed)."""
    installed = provider()
    if installed is not None:
        return installed.get_tracer(TRACER_NAME)
    return trace.get_tracer(TRACER_NAME)


def current_trace_headers() -> dict[str, str]:
    """The W3C trace context of the current span, as message headers (empty without one)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def _header_carrier(headers: Iterable[tuple[str, bytes | str]] | None) -> dict[str, str]:
    carrier: dict[str, str] = {}
    for name, value in headers or ():
        if name in TRACE_HEADERS and value is not None:
            carrier[name] = value.decode("latin-1") if isinstance(value, bytes) else value
    return carrier


def context_of_headers(
    headers: Iterable[tuple[str, bytes | str]] | None,
) -> otel_context.Context | None:
    """The trace context a Kafka record's headers carry, or None."""
    carrier = _header_carrier(headers)
    return propagate.extract(carrier) if carrier else None


def context_of_carrier(carrier: Mapping[str, str] | None) -> otel_context.Context | None:
    """The trace context of a stored carrier (an outbox row's), or None."""
    return propagate.extract(dict(carrier)) if carrier else None


@contextmanager
def publish_span(
    topic: str,
    headers: MutableMapping[str, str],
    *,
    parent: otel_context.Context | None = None,
    event_type: str | None = None,
    link: otel_context.Context | None = None,
) -> Iterator[Span]:
    """A producer span around one publish, its context injected into ``headers`` (a child of
    ``parent``, the current span by default; linked to the span of ``link`` when given)."""
    attributes: dict[str, str] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.destination.name": topic,
    }
    if event_type:
        attributes["mrm.event_type"] = event_type
    links = [Link(trace.get_current_span(link).get_span_context())] if link is not None else []
    with tracer().start_as_current_span(
        f"send {topic}",
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes=attributes,
        links=links,
    ) as span:
        propagate.inject(headers)
        yield span


@contextmanager
def consume_span(
    topic: str,
    handler: str,
    headers: Iterable[tuple[str, bytes | str]] | None,
    *,
    event_type: str | None = None,
) -> Iterator[Span]:
    """A consumer span around handling one record, child of the publish span that sent it."""
    attributes: dict[str, str] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": topic,
        "mrm.handler": handler,
    }
    if event_type:
        attributes["mrm.event_type"] = event_type
    with tracer().start_as_current_span(
        f"process {topic}",
        context=context_of_headers(headers) or otel_context.Context(),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
    ) as span:
        yield span


MAX_BATCH_LINKS = 128
"""Links a batch span keeps to the traces of its records (the first ones that carry one)."""


@contextmanager
def batch_span(handler: str, records: Sequence[Any]) -> Iterator[Span]:
    """A consumer span around one batch, linked to the publish spans of its records."""
    links: list[Link] = []
    if recording():
        for record in records:
            if len(links) >= MAX_BATCH_LINKS:
                break
            parent = context_of_headers(getattr(record, "headers", None)) if record else None
            if parent is not None:
                links.append(Link(trace.get_current_span(parent).get_span_context()))
    with tracer().start_as_current_span(
        f"process batch {handler}",
        context=otel_context.Context(),
        kind=SpanKind.CONSUMER,
        links=links,
        attributes={"messaging.system": "kafka", "messaging.batch.message_count": len(records)},
    ) as span:
        yield span
