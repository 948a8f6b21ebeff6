"""The notifier's own Prometheus metrics, in the service's registry next to the pipeline ones
(one name across services, the service as a label, as ``shared.metrics`` does)."""

from __future__ import annotations

from shared.metrics import ServiceMetrics

RECORDED_STATUSES = ("pending", "skipped")
OUTCOMES = ("delivered", "retry", "failed")


class NotifierMetrics:
    """Notifications recorded, delivery attempts and their latency, causes waiting."""

    def __init__(self, metrics: ServiceMetrics, *, channels: tuple[str, ...] = ()) -> None:
        self.notifications = metrics.counter(
            "mrm_notifications_total",
            "Notifications recorded, by initial status (pending or skipped).",
            "status",
        )
        self.attempts = metrics.counter(
            "mrm_notification_attempts_total",
            "Delivery attempts by channel and outcome (delivered, retry, failed).",
            "channel",
            "outcome",
        )
        self.delivery_seconds = metrics.histogram(
            "mrm_notification_delivery_seconds", "Time one delivery attempt took.", "channel"
        )
        self.parked = metrics.counter(
            "mrm_notification_parked_causes_total",
            "Causes that had to wait for their campaign or plan to be known.",
        )
        self.parked_expired = metrics.counter(
            "mrm_notification_parked_expired_total",
            "Causes dropped after waiting too long for their stage, campaign or plan.",
        )
        self.parked_waiting = metrics.gauge(
            "mrm_notification_waiting_causes",
            "Causes waiting for their stage, campaign or plan (as of the last sweep).",
        )
        self.pending = metrics.gauge(
            "mrm_notifications_due", "Due notifications the last delivery round found."
        )
        # counters start at zero for every known label value (an alert on their increase
        # then sees the first failure)
        for status in RECORDED_STATUSES:
            self.notifications.labels(status=status)
        for channel in channels:
            for outcome in OUTCOMES:
                self.attempts.labels(channel=channel, outcome=outcome)
        self.parked.labels()
        self.parked_expired.labels()
