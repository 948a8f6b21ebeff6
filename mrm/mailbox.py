"""A development mailbox for the embedded run: a real SMTP server on loopback (aiosmtpd) that
keeps every message it receives as an ``.eml`` file, so notifications can be read locally."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from shared.embedded import free_port


class _SaveToFolder:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.counter = itertools.count(1)

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        path = self.folder / f"{stamp}-{next(self.counter):05d}.eml"
        content = envelope.original_content or b""
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return "250 Message accepted for delivery"


class DevMailbox:
    """An SMTP server on a free loopback port that saves messages into ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self._controller = Controller(_SaveToFolder(folder), hostname="127.0.0.1", port=self.port)

    def start(self) -> DevMailbox:
        """Start accepting mail."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop the server."""
        self._controller.stop()
