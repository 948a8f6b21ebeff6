"""Delivery channels: the ``EmailSender`` / ``WebhookSender`` ports and their real adapters.

Adapters raise :class:`DeliveryError` and say whether retrying can help (``permanent``): a
refused connection or a 5xx answer is worth retrying, a refused address or a 4xx is not.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Protocol

import aiosmtplib
import httpx

SIGNATURE_HEADER = "X-MRM-Signature"
NOTIFICATION_ID_HEADER = "X-MRM-Notification-Id"
_RETRYABLE_HTTP = frozenset({408, 425, 429})


class DeliveryError(Exception):
    """A channel did not accept a notification; ``permanent`` if retrying cannot help."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class EmailSender(Protocol):
    """Sends a plain-text e-mail."""

    async def send_email(self, *, to: str, subject: str, body: str, message_id: str) -> None:
        """Send one message; raise ``DeliveryError`` if the server did not accept it."""
        ...


class WebhookSender(Protocol):
    """POSTs a JSON document to a URL."""

    async def post_json(
        self, *, url: str, payload: Mapping[str, Any], notification_id: str
    ) -> None:
        """Deliver one document; raise ``DeliveryError`` unless the receiver answered 2xx."""
        ...


@dataclass(frozen=True)
class Senders:
    """The channels the delivery worker sends through."""

    email: EmailSender
    webhook: WebhookSender


class SmtpEmailSender:
    """E-mail over SMTP with aiosmtplib (optional STARTTLS and login)."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout_s: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout_s = timeout_s

    async def send_email(self, *, to: str, subject: str, body: str, message_id: str) -> None:
        """Send one message; its Message-ID is stable across retries so MTAs can dedup."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = f"<{message_id}@mrm-notifier>"
        message.set_content(body)
        try:
            await aiosmtplib.send(
                message,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                start_tls=self.starttls,
                timeout=self.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [error.code for error in exc.recipients]
            permanent = bool(codes) and all(code >= 500 for code in codes)
            raise DeliveryError(f"smtp: recipient refused ({exc})", permanent=permanent) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"smtp: {exc.code} {exc.message}", permanent=exc.code >= 500
            ) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"smtp: {type(exc).__name__}: {exc}") from exc


class HttpWebhookSender:
    """Webhooks as JSON POSTs with httpx, signed with HMAC-SHA256 when a secret is set."""

    def __init__(self, *, client: httpx.AsyncClient, secret: str | None = None) -> None:
        self.client = client
        self.secret = secret

    async def post_json(
        self, *, url: str, payload: Mapping[str, Any], notification_id: str
    ) -> None:
        """POST ``payload``; 2xx is success, 408/425/429/5xx and network errors are retryable."""
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            NOTIFICATION_ID_HEADER: notification_id,
            "Idempotency-Key": notification_id,
        }
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(body, secret=self.secret)
        try:
            response = await self.client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook: {type(exc).__name__}: {exc}") from exc
        if response.is_success:
            return
        status = response.status_code
        retryable = status >= 500 or status in _RETRYABLE_HTTP
        raise DeliveryError(
            f"webhook: HTTP {status} {response.reason_phrase}".rstrip(), permanent=not retryable
        )


def sign(body: bytes, *, secret: str) -> str:
    """The ``X-MRM-Signature`` value of ``body``: ``sha256=<hex HMAC-SHA256>``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"
