"""Notifier test kit: fake senders, a real SMTP server and a real webhook receiver on loopback."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
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


@dataclass
class ReceivedMail:
    """One message the SMTP server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    message: email.message.EmailMessage


class MailSink:
    """An aiosmtpd handler collecting every message."""

    def __init__(self) -> None:
        self.messages: list[ReceivedMail] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(
                ReceivedMail(
                    mail_from=envelope.mail_from,
                    rcpt_tos=list(envelope.rcpt_tos),
                    message=message,  # type: ignore[arg-type]
                )
            )
        return "250 OK"


@dataclass
class SmtpServer:
    """A real SMTP server (aiosmtpd) on a loopback port, collecting messages."""

    host: str
    port: int
    sink: MailSink

    @property
    def messages(self) -> list[ReceivedMail]:
        """Messages received so far."""
        with self.sink.lock:
            return list(self.sink.messages)


@dataclass
class ReceivedPost:
    """One POST the webhook receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """A real HTTP server on loopback recording POSTs; answers per path from a status script."""

    base_url: str
    posts: list[ReceivedPost] = field(default_factory=list)
    scripts: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, path: str, *statuses: int) -> None:
        """Answer the next POSTs to ``path`` with ``statuses`` in order, then 200."""
        with self.lock:
            self.scripts[path] = list(statuses)

    def received(self, path: str | None = None) -> list[ReceivedPost]:
        """POSTs received so far (to ``path``)."""
        with self.lock:
            return [post for post in self.posts if path is None or post.path == path]
