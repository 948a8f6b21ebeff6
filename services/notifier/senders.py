"""Delivery channels: the ``EmailSender`` / ``WebhookSender`` ports and their real adapters.

Adapters raise :class:`DeliveryError` and say whether retrying can help (``permanent``): a
refused connection or a 5xx answer is worth retrying, a refused address or a 4xx is not.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import json
import math
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Protocol

import aiosmtplib
import httpx
from standardwebhooks import Webhook

NOTIFICATION_ID_HEADER = "X-MRM-Notification-Id"
_SECRET_PREFIX = "whsec_"
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
    """Webhooks as JSON POSTs with httpx, signed with the Standard Webhooks scheme when a secret
    is set, and sent only to public addresses unless ``allow_private``.

    Every POST carries ``webhook-id`` (the notification id, the same on every retry),
    ``webhook-timestamp`` (Unix seconds of this attempt) and, with a secret,
    ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``), so that a
    receiver verifies with any Standard Webhooks library and refuses a replayed old request.
    The host is resolved before each POST and every address it resolves to must be public
    (DNS may change after the URL was accepted); the POST then goes to the address checked.
    """

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        secret: str | None = None,
        allow_private: bool = False,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.client = client
        self.signer = Webhook(webhook_key(secret)) if secret else None
        self.allow_private = allow_private
        self.clock = clock

    async def post_json(
        self, *, url: str, payload: Mapping[str, Any], notification_id: str
    ) -> None:
        """POST ``payload``; 2xx is success, 408/425/429/5xx and network errors are retryable,
        a refused address or another 4xx is permanent."""
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True)
        timestamp = self.clock()
        headers = {
            "Content-Type": "application/json",
            NOTIFICATION_ID_HEADER: notification_id,
            "Idempotency-Key": notification_id,
            "webhook-id": notification_id,
            "webhook-timestamp": str(math.floor(timestamp.timestamp())),
        }
        if self.signer is not None:
            headers["webhook-signature"] = self.signer.sign(notification_id, timestamp, body)
        target = httpx.URL(url)
        extensions: dict[str, Any] = {}
        if not self.allow_private:
            address = await public_address_of(target)
            if address != target.host:
                # connect to the address just checked (no second lookup that could differ),
                # while the Host header and TLS still name the host of the URL
                headers["Host"] = target.netloc.decode("ascii")
                extensions["sni_hostname"] = target.host
                target = target.copy_with(host=address)
        try:
            response = await self.client.post(
                target, content=body.encode(), headers=headers, extensions=extensions
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook: {type(exc).__name__}: {exc}") from exc
        if response.is_success:
            return
        status = response.status_code
        retryable = status >= 500 or status in _RETRYABLE_HTTP
        raise DeliveryError(
            f"webhook: HTTP {status} {response.reason_phrase}".rstrip(), permanent=not retryable
        )


def webhook_key(secret: str) -> bytes:
    """The signing key of a webhook secret: a Standard Webhooks secret ``whsec_<base64>`` is
    its decoded bytes, any other string its UTF-8 bytes."""
    if secret.startswith(_SECRET_PREFIX):
        return base64.b64decode(secret.removeprefix(_SECRET_PREFIX), validate=True)
    return secret.encode()


# -- where webhooks may go --------------------------------------------------------------------

_LOCAL_NAMES = ("localhost", "localhost.localdomain")


def refused_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether a webhook must not be sent to ``address``: anything but a public unicast
    address (loopback, link-local such as 169.254.169.254, private, shared, reserved,
    multicast, unspecified; IPv4 inside IPv6 is judged as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


def webhook_url_problem(url: str, *, allow_private: bool) -> str | None:
    """Why ``url`` may not receive webhooks as written (a non-public IP literal or a local
    name), or None. Host names are checked again after resolution, at every send."""
    if allow_private:
        return None
    host = (httpx.URL(url).host or "").rstrip(".").lower()
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        return f"host {host!r} is local; webhooks go to public addresses only"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if refused_address(address):
        return f"address {host} is not public; webhooks go to public addresses only"
    return None


async def public_address_of(url: httpx.URL) -> str:
    """The address to POST ``url`` to: its host resolved, every address it has public
    (``DeliveryError``, permanent, otherwise; a failed lookup is retryable)."""
    problem = webhook_url_problem(str(url), allow_private=False)
    if problem is not None:
        raise DeliveryError(f"webhook: {problem}", permanent=True)
    host = url.host
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise DeliveryError(f"webhook: cannot resolve {host!r}: {exc}") from exc
    addresses = [ipaddress.ip_address(info[4][0]) for info in found]
    refused = sorted({str(a) for a in addresses if refused_address(a)})
    if refused or not addresses:
        raise DeliveryError(
            f"webhook: host {host!r} resolves to non-public address(es) {', '.join(refused)}",
            permanent=True,
        )
    return str(addresses[0])
