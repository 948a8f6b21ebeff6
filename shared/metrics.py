"""Prometheus metrics of one service, in a registry of its own built by its composition root.

Names follow ``mrm_<noun>_<unit|total>``, one name across services, with the service as a
label (``mrm_messages_in_total{service="planning",topic=…}``), as Prometheus conventions want;
other labels stay low-cardinality (topic, handler, route template). Callers never pass the
service: each metric here is bound to it (``metrics.messages_in.labels(topic=…)``).
Labelled counters start at zero for the label values a service knows (the topics it consumes
and publishes, the failure kinds, its routes and methods with each status class), so a rate or
an ``increase`` sees the first event instead of a new series.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics import MetricWrapperBase

CONTENT_TYPE = CONTENT_TYPE_LATEST
FAILURE_KINDS = ("data", "outage", "unknown")
"""``shared.failures.Failure`` values (the ``kind`` label of ``mrm_consumer_failures_total``)."""
STATUS_CLASSES = ("2xx", "4xx", "5xx")
"""Status classes a route's ``mrm_http_requests_total`` starts at zero with (a route answers
no 1xx, and 3xx only for redirects no alert watches: those series appear when first used)."""


def status_class(code: int) -> str:
    """The ``status`` label of an HTTP status code: its class (``404`` → ``4xx``)."""
    return f"{code // 100}xx"


M = TypeVar("M", bound=MetricWrapperBase)


class Bound(Generic[M]):
    """A metric with its ``service`` label filled in: ``labels`` takes the other labels; an
    unlabelled metric's ``inc``/``set``/``observe`` act on the service's series."""

    def __init__(self, metric: M, service: str) -> None:
        self.metric = metric
        self.service = service

    def labels(self, **labels: str) -> Any:
        """The child series of the service with ``labels``."""
        return self.metric.labels(service=self.service, **labels)

    def inc(self, amount: float = 1) -> None:
        """Increment the service's series (counters and gauges without other labels)."""
        self.labels().inc(amount)

    def set(self, value: float) -> None:
        """Set the service's series (gauges without other labels)."""
        self.labels().set(value)

    def observe(self, value: float) -> None:
        """Observe a value on the service's series (histograms without other labels)."""
        self.labels().observe(value)


class ServiceMetrics:
    """The pipeline and HTTP metrics every service exposes on ``/metrics``."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        self.messages_in = self.counter("mrm_messages_in_total", "Messages consumed.", "topic")
        self.messages_out = self.counter("mrm_messages_out_total", "Messages published.", "topic")
        self.messages_failed = self.counter(
            "mrm_messages_failed_total",
            "Handler attempts that raised (the message is retried).",
            "topic",
        )
        self.dead_letters = self.counter(
            "mrm_dead_letters_total", "Messages sent to a dead-letter topic.", "topic"
        )
        self.consumer_failures = self.counter(
            "mrm_consumer_failures_total",
            "Failed handling attempts by kind: data (dead-lettered at once), outage (retried "
            "until it passes), unknown (retried a bounded number of times, then dead-lettered).",
            "topic",
            "kind",
        )
        self.replays_skipped = self.counter(
            "mrm_replays_skipped_total",
            "Replayed dead letters skipped because they are meant for another consumer group.",
            "topic",
        )
        self.handler_seconds = self.histogram(
            "mrm_handler_seconds", "Time spent handling a message or batch.", "handler"
        )
        self.consumer_lag = self.gauge(
            "mrm_consumer_lag_messages",
            "Messages behind the end of the topic (approximate).",
            "topic",
        )
        self.stalled_partitions = Gauge(
            "mrm_consumer_stalled_partitions",
            "Partitions with lag and no progress for MRM_CONSUMER_STALL_AFTER_S.",
            ["service", "topic"],
            registry=self.registry,
        )
        self.outbox_pending = self.gauge(
            "mrm_outbox_pending_messages", "Outbox rows not yet published."
        )
        self.http_requests = self.counter(
            "mrm_http_requests_total",
            "HTTP requests answered, by method, route template and status class (2xx, 4xx, "
            "5xx: the exact code is in the access log and the request's span).",
            "method",
            "route",
            "status",
        )
        self.http_seconds = self.histogram(
            "mrm_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response, by route template.",
            "method",
            "route",
        )

    def counter(self, name: str, documentation: str, *labels: str) -> Bound[Counter]:
        """A counter of this service in its registry (``service`` label added)."""
        metric = Counter(name, documentation, ["service", *labels], registry=self.registry)
        return Bound(metric, self.service)

    def gauge(self, name: str, documentation: str, *labels: str) -> Bound[Gauge]:
        """A gauge of this service in its registry (``service`` label added)."""
        metric = Gauge(name, documentation, ["service", *labels], registry=self.registry)
        return Bound(metric, self.service)

    def histogram(self, name: str, documentation: str, *labels: str) -> Bound[Histogram]:
        """A histogram of this service in its registry (``service`` label added)."""
        metric = Histogram(name, documentation, ["service", *labels], registry=self.registry)
        return Bound(metric, self.service)

    def consuming(self, topics: Iterable[str]) -> None:
        """Start the per-topic consumer counters at zero for ``topics``."""
        for topic in topics:
            for counter in (
                self.messages_in,
                self.messages_failed,
                self.dead_letters,
                self.replays_skipped,
            ):
                counter.labels(topic=topic)
            for kind in FAILURE_KINDS:
                self.consumer_failures.labels(topic=topic, kind=kind)

    def publishing(self, topics: Iterable[str]) -> None:
        """Start the per-topic publisher counter at zero for ``topics``."""
        for topic in topics:
            self.messages_out.labels(topic=topic)

    def serving(self, routes: Iterable[tuple[str, str]]) -> None:
        """Start the HTTP request counter at zero for each (method, route template) in
        ``routes``, with every status class of ``STATUS_CLASSES``."""
        for method, route in routes:
            for status in STATUS_CLASSES:
                self.http_requests.labels(method=method, route=route, status=status)

    def render(self) -> bytes:
        """The metrics in Prometheus text format."""
        return generate_latest(self.registry)
