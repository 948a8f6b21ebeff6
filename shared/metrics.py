"""Prometheus metrics of one service, in a registry of its own built by its composition root.

Names follow ``mrm_<service>_<noun>_<unit|total>``; labels stay low-cardinality (topic, handler).
Newer metrics carry the service as a label under one name across services
(``mrm_consumer_stalled_partitions{service=…}``), as Prometheus conventions want.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServiceMetrics:
    """The pipeline metrics every service exposes on ``/metrics``."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        prefix = f"mrm_{service}"
        self.messages_in = Counter(
            f"{prefix}_messages_in_total", "Messages consumed.", ["topic"], registry=self.registry
        )
        self.messages_out = Counter(
            f"{prefix}_messages_out_total", "Messages published.", ["topic"], registry=self.registry
        )
        self.messages_failed = Counter(
            f"{prefix}_messages_failed_total",
            "Handler attempts that raised (the message is retried).",
            ["topic"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            f"{prefix}_dead_letters_total",
            "Messages sent to a dead-letter topic.",
            ["topic"],
            registry=self.registry,
        )
        self.consumer_failures = Counter(
            f"{prefix}_consumer_failures_total",
            "Failed handling attempts by kind: data (dead-lettered at once), outage (retried "
            "until it passes), unknown (retried a bounded number of times, then dead-lettered).",
            ["topic", "kind"],
            registry=self.registry,
        )
        self.replays_skipped = Counter(
            f"{prefix}_replays_skipped_total",
            "Replayed dead letters skipped because they are meant for another consumer group.",
            ["topic"],
            registry=self.registry,
        )
        self.handler_seconds = Histogram(
            f"{prefix}_handler_seconds",
            "Time spent handling a message or batch.",
            ["handler"],
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            f"{prefix}_consumer_lag_messages",
            "Messages behind the end of the topic (approximate).",
            ["topic"],
            registry=self.registry,
        )
        self.stalled_partitions = Gauge(
            "mrm_consumer_stalled_partitions",
            "Partitions with lag and no progress for MRM_CONSUMER_STALL_AFTER_S.",
            ["service", "topic"],
            registry=self.registry,
        )
        self.outbox_pending = Gauge(
            f"{prefix}_outbox_pending_messages",
            "Outbox rows not yet published.",
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The metrics in Prometheus text format."""
        return generate_latest(self.registry)
