"""The notifier's own Prometheus metrics, in the service's registry next to the pipeline ones."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from shared.metrics import ServiceMetrics


class NotifierMetrics:
    """Notifications recorded, delivery attempts and their latency, causes waiting."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        registry = metrics.registry
        self.notifications = Counter(
            "mrm_notifier_notifications_total",
            "Notifications recorded, by initial status (pending or skipped).",
            ["status"],
            registry=registry,
        )
        self.attempts = Counter(
            "mrm_notifier_delivery_attempts_total",
            "Delivery attempts by channel and outcome (delivered, retry, failed).",
            ["channel", "outcome"],
            registry=registry,
        )
        self.delivery_seconds = Histogram(
            "mrm_notifier_delivery_seconds",
            "Time one delivery attempt took.",
            ["channel"],
            registry=registry,
        )
        self.parked = Counter(
            "mrm_notifier_parked_causes_total",
            "Causes that had to wait for their campaign or plan to be known.",
            registry=registry,
        )
        self.parked_expired = Counter(
            "mrm_notifier_parked_expired_total",
            "Causes dropped after waiting too long for their stage, campaign or plan.",
            registry=registry,
        )
        self.parked_waiting = Gauge(
            "mrm_notifier_waiting_causes",
            "Causes waiting for their stage, campaign or plan (as of the last sweep).",
            registry=registry,
        )
        self.pending = Gauge(
            "mrm_notifier_due_notifications",
            "Due notifications the last delivery round found.",
            registry=registry,
        )
