"""``mrm up``: the embedded broker (unless one is configured) and the four services as processes.

Every child runs in its own session so that Ctrl-C reaches only the supervisor. A service that
dies is started again after a back-off (doubling, capped) while the broker and the other
services keep running, so the events meant for it wait in the broker instead of being lost
with a memory-only broker; after repeated crashes right after start the supervisor stops trying
and says so. Ctrl-C stops the services first (SIGTERM: they stop consuming, finish what is in
flight and publish their outbox) and the broker last, leaving no orphan behind. An embedded
broker that dies is started again on its port, empty; the services recover from that on their
own (``shared.watch``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import httpx

from mrm.mailbox import DevMailbox
from mrm.migrate import SQL_SERVICES, migrate_services
from mrm.runtime import SERVICES, Runtime, dev_tokens
from shared.embedded import EmbeddedBroker, die_with_parent
from shared.kafka import ensure_topics
from shared.settings import CommonSettings
from shared.topics import all_topics_with_dlq


class StartupFailed(RuntimeError):
    """A service did not become ready."""


def spawn_service(
    name: str, *, env: Mapping[str, str], log_path: Path, inherit_mrm: bool = True
) -> subprocess.Popen[bytes]:
    """``python -m services.<name>`` in a session of its own (Ctrl-C reaches only us) that dies
    with this process, its output appended to ``log_path``. ``env`` overrides this process's
    environment; without ``inherit_mrm`` the child sees only the ``MRM_*`` variables of ``env``."""
    base = {k: v for k, v in os.environ.items() if inherit_mrm or not k.startswith("MRM_")}
    with open(log_path, "ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            env={**base, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )


@dataclass(frozen=True)
class RestartPolicy:
    """When a crashed service is started again, and when the supervisor stops trying."""

    initial_s: float = 1.0
    maximum_s: float = 30.0
    quick_crash_s: float = 30.0
    """A crash this soon after a start counts as quick (the service cannot run)."""
    give_up_after: int = 5
    """Quick crashes in a row after which the service is left stopped."""

    def delay(self, crashes: int) -> float:
        """Seconds to wait before start number ``crashes`` + 1 (doubling, capped)."""
        return min(self.maximum_s, self.initial_s * 2 ** max(0, crashes - 1))


@dataclass
class _Restarts:
    started_at: float
    crashes: int = 0
    due_at: float | None = None
    gave_up: bool = False


class Platform:
    """The processes of one platform run."""

    def __init__(  # type: ignore[no-untyped-def]
        self, settings: CommonSettings, *, echo=print, restart: RestartPolicy | None = None
    ) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self.logs = self.data_dir / "logs"
        self.echo = echo
        self.restart = restart or RestartPolicy()
        self.broker: EmbeddedBroker | None = None
        self.mailbox: DevMailbox | None = None
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.runtime: Runtime | None = None
        self._spawn_args: dict[str, dict[str, object]] = {}
        self._restarts: dict[str, _Restarts] = {}
        self._stopping = False

    def start(self, *, ready_timeout_s: float = 120.0) -> Runtime:
        """Start the broker (if embedded), create topics, migrate the SQL databases, start
        services, wait until ready."""
        self.logs.mkdir(parents=True, exist_ok=True)
        bootstrap = self.settings.kafka_bootstrap
        if not bootstrap:
            self.broker = EmbeddedBroker(log_file=self.logs / "broker.log").start()
            bootstrap = self.broker.bootstrap
            self.echo(f"embedded Kafka-protocol broker (Tansu) on {bootstrap}")
        ensure_topics(bootstrap, all_topics_with_dlq(), kafka=self.settings.kafka_options())
        if not os.environ.get("MRM_SMTP_HOST"):
            self.mailbox = DevMailbox(self.data_dir / "mail").start()
            self.echo(
                f"development mailbox (SMTP) on 127.0.0.1:{self.mailbox.port}: "
                f"e-mails land in {self.mailbox.folder}"
            )
        # the services refuse a database that is not at head: migrate before they start
        migrate_services(SQL_SERVICES, data_dir=self.data_dir, echo=self.echo)
        tokens = {t: g.model_dump() for t, g in self.settings.tokens.items()} or dev_tokens()
        urls = {}
        for name, default_port in SERVICES.items():
            port = int(os.environ.get(f"MRM_{name.upper()}_PORT", default_port))
            urls[name] = f"http://127.0.0.1:{port}"
            self._spawn_args[name] = {"port": port, "bootstrap": bootstrap, "tokens": tokens}
            self.children[name] = self._spawn(name, port=port, bootstrap=bootstrap, tokens=tokens)
            self._restarts[name] = _Restarts(started_at=time.monotonic())
        self.runtime = Runtime(kafka_bootstrap=bootstrap, urls=urls, tokens=tokens)
        self.runtime.save(self.data_dir)
        self._wait_ready(urls, timeout_s=ready_timeout_s)
        return self.runtime

    def _spawn(
        self, name: str, *, port: int, bootstrap: str, tokens: dict[str, dict[str, str]]
    ) -> subprocess.Popen[bytes]:
        env = {
            "MRM_KAFKA_BOOTSTRAP": bootstrap,
            "MRM_TOKENS": json.dumps(tokens),
            "MRM_DATA_DIR": str(self.data_dir),
            f"MRM_{name.upper()}_PORT": str(port),
            "MRM_LOG_JSON": os.environ.get("MRM_LOG_JSON", "true"),
        }
        # the development set-up runs on one machine: webhooks may go to local receivers
        env["MRM_NOTIFIER_WEBHOOK_ALLOW_PRIVATE"] = os.environ.get(
            "MRM_NOTIFIER_WEBHOOK_ALLOW_PRIVATE", "true"
        )
        if self.broker is not None:  # Tansu does not support idempotent producers
            env["MRM_KAFKA_IDEMPOTENCE"] = "false"
        if "MRM_PORT" in os.environ:  # one port for all four would collide
            env["MRM_PORT"] = str(port)
        if self.mailbox is not None:
            env.update({"MRM_SMTP_HOST": "127.0.0.1", "MRM_SMTP_PORT": str(self.mailbox.port)})
        return spawn_service(name, env=env, log_path=self.logs / f"{name}.log")

    def _wait_ready(self, urls: dict[str, str], *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pending = dict(urls)
        with httpx.Client(timeout=2) as client:
            while pending:
                for name, url in list(pending.items()):
                    if self.children[name].poll() is not None:
                        raise StartupFailed(
                            f"{name} exited during start-up:\n{self.log_tail(name)}"
                        )
                    try:
                        if client.get(f"{url}/ready").status_code == 200:
                            self.echo(f"  {name:<12} ready  {url}")
                            del pending[name]
                    except httpx.HTTPError:
                        pass
                if pending and time.monotonic() > deadline:
                    raise StartupFailed(f"not ready after {timeout_s:.0f} s: {', '.join(pending)}")
                time.sleep(0.3)

    def log_tail(self, name: str, lines: int = 30) -> str:
        """The last lines of a service's log."""
        path = self.logs / f"{name}.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )

    def failed(self) -> str | None:
        """The name of a service that has exited, if any."""
        return next(
            (name for name, child in self.children.items() if child.poll() is not None), None
        )

    def given_up(self) -> list[str]:
        """The services left stopped after repeated quick crashes."""
        return [name for name, state in self._restarts.items() if state.gave_up]

    def supervise_once(self) -> None:
        """Notice services that exited and start them again when their back-off is over."""
        now = time.monotonic()
        if self._stopping:
            return
        broker = self.broker
        if broker is not None and (broker.process is None or broker.process.poll() is not None):
            # the services notice, re-create the topics and rewind (see shared.watch)
            self.echo(f"the embedded broker exited; starting an empty one on {broker.bootstrap}")
            try:
                broker.start()
            except TimeoutError as exc:  # the port is taken meanwhile: tried again next time
                self.echo(f"the embedded broker did not start: {exc}")
        for name, child in list(self.children.items()):
            state = self._restarts[name]
            if child.poll() is None or state.gave_up:
                continue
            if state.due_at is None:
                self._crashed(name, child.returncode, state, now=now)
            elif now >= state.due_at:
                args = self._spawn_args[name]
                self.children[name] = self._spawn(
                    name,
                    port=int(args["port"]),  # type: ignore[call-overload]
                    bootstrap=str(args["bootstrap"]),
                    tokens=args["tokens"],  # type: ignore[arg-type]
                )
                state.started_at, state.due_at = now, None
                self.echo(f"{name} started again (start {state.crashes + 1})")

    def _crashed(self, name: str, code: int | None, state: _Restarts, *, now: float) -> None:
        quick = now - state.started_at < self.restart.quick_crash_s
        state.crashes = state.crashes + 1 if quick else 1
        tail = self.log_tail(name, lines=10)
        if quick and state.crashes >= self.restart.give_up_after:
            state.gave_up = True
            self.echo(
                f"{name} exited (code {code}) {state.crashes} times in a row within "
                f"{self.restart.quick_crash_s:.0f} s of starting; not starting it again. "
                f"The other services and the broker keep running; its events wait in the "
                f"broker. Log: {self.logs / f'{name}.log'}\n{tail}"
            )
            return
        delay = self.restart.delay(state.crashes)
        state.due_at = now + delay
        self.echo(f"{name} exited (code {code}); starting it again in {delay:.0f} s\n{tail}")

    def supervise(self, stop: threading.Event, *, every_s: float = 0.5) -> None:
        """Run ``supervise_once`` every ``every_s`` until ``stop`` is set."""
        while not stop.wait(every_s):
            self.supervise_once()

    def stop(self, *, grace_s: float = 20.0) -> None:
        """Stop every service (SIGTERM: each stops consuming, finishes what it handles and
        flushes its outbox; SIGKILL after ``grace_s``), then the broker."""
        self._stopping = True
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in self.children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.children.clear()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        if self.mailbox is not None:
            self.mailbox.stop()
            self.mailbox = None


def run_until_signal(platform: Platform, *, after_start=None) -> int:  # type: ignore[no-untyped-def]
    """Start the platform, run ``after_start(runtime)``, then wait for Ctrl-C / SIGTERM."""

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, request_stop)
    try:
        runtime = platform.start()
        admin = runtime.token_for("admin")
        platform.echo("")
        platform.echo(
            "MRM platform is up. API docs: "
            + ", ".join(f"{url}/docs" for url in runtime.urls.values())
        )
        platform.echo(f"development admin token: {admin}")
        platform.echo(f"all tokens: {platform.data_dir / 'runtime.json'}   logs: {platform.logs}")
        platform.echo("A service that stops is started again. Ctrl-C stops everything.")
        if after_start is not None:
            try:
                after_start(runtime)
            except (httpx.HTTPError, OSError, SystemExit) as exc:
                platform.echo(f"the demo stopped: {exc}; the platform keeps running")
        while True:
            platform.supervise_once()
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    except StartupFailed as exc:
        platform.echo(f"start-up failed: {exc}")
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
        platform.echo("stopping…")
        platform.stop()
        platform.echo("stopped.")
