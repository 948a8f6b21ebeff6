"""Fixtures of the notifier tests: a real SMTP server and a real webhook receiver on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from notifier_testkit import MailSink, ReceivedPost, SmtpServer, WebhookReceiver

from shared.embedded import free_port


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A running SMTP server on a free loopback port."""
    sink = MailSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer(host="127.0.0.1", port=port, sink=sink)
    finally:
        controller.stop()


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
