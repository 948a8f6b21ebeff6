"""Fake channel senders for the notifier's unit tests (same Protocols as the real adapters)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.notifier.senders import DeliveryError


class FakeEmailSender:
    """Records e-mails; fails the next ``fail_next`` sends (transient unless ``permanent``)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []
        self.fail_next = 0
        self.permanent = False

    async def send_email(self, *, to: str, subject: str, body: str, message_id: str) -> None:
        """Record or fail."""
        if self.fail_next:
            self.fail_next -= 1
            raise DeliveryError("smtp: connection refused", permanent=self.permanent)
        self.sent.append({"to": to, "subject": subject, "body": body, "message_id": message_id})


class FakeWebhookSender:
    """Records webhook documents; fails the next ``fail_next`` posts."""

    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []
        self.fail_next = 0
        self.permanent = False

    async def post_json(
        self, *, url: str, payload: Mapping[str, Any], notification_id: str
    ) -> None:
        """Record or fail."""
        if self.fail_next:
            self.fail_next -= 1
            raise DeliveryError("webhook: HTTP 503 Service Unavailable", permanent=self.permanent)
        self.posted.append({"url": url, "payload": dict(payload), "id": notification_id})
