"""Notifier test kit: fake senders, a real SMTP server and a real webhook receiver on loopback."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from shared.embedded import free_port


@dataclass
class ReceivedMail:
    """One message the SMTP server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    message: email.message.EmailMessage


class _MailSink:
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
    sink: _MailSink

    @property
    def messages(self) -> list[ReceivedMail]:
        """Messages received so far."""
        with self.sink.lock:
            return list(self.sink.messages)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A running SMTP server on a free loopback port."""
    sink = _MailSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer(host="127.0.0.1", port=port, sink=sink)
    finally:
        controller.stop()


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


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A running webhook receiver on a free loopback port."""
    port = free_port()
    receiver = WebhookReceiver(base_url=f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                script = receiver.scripts.get(self.path) or []
                status = script.pop(0) if script else 200
                receiver.posts.append(
                    ReceivedPost(
                        path=self.path, headers=dict(self.headers.items()), body=body, status=status
                    )
                )
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
