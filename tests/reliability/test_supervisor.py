"""``mrm up`` keeps the platform running when a service dies: the crashed service is started
again with back-off while the broker (memory-only) keeps the events meant for it; repeated quick
crashes make it give up and say so; shutting down drains the services before the broker."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
from restart_kit import create_campaign, progress, running_platform, tag, wait_for

from mrm.migrate import SQL_SERVICES, settings_and_migrations
from mrm.supervisor import Platform, RestartPolicy, _Restarts
from shared.embedded import EmbeddedBroker
from shared.events.ingest import SpendRecorded
from shared.migrations import current_revision
from shared.publisher import EventPublisher
from shared.runtime import broker_running
from shared.settings import CommonSettings
from shared.sql import make_engine


def test_a_killed_service_comes_back_and_handles_what_was_published_meanwhile(
    tmp_path: Path,
) -> None:
    with running_platform(tmp_path) as run, httpx.Client(timeout=10) as client:
        urls = run.urls
        others = {name: run.pid(name) for name in urls if name != "execution"}
        killed = run.pid("execution")
        os.kill(killed, signal.SIGKILL)

        # published while execution is down: a campaign and its spend
        campaign_id = create_campaign(client, urls["planning"], tag=f"down-{tag()}")
        with EventPublisher(run.broker.bootstrap, source="test") as events:
            for amount in ("10.00", "20.00", "12.50"):
                events.publish(
                    SpendRecorded(
                        campaign_id=campaign_id, channel="search", amount=amount, currency="USD"
                    )
                )

        wait_for(
            lambda: run.pid("execution") != killed,
            timeout_s=30,
            what="execution started again",
        )
        found = wait_for(
            lambda: (
                (p := progress(client, urls["execution"], campaign_id))
                and p["name"]
                and float(p["spend"]) == 42.5
                and p
            ),
            timeout_s=90,
            what="the campaign and its spend in execution",
        )
        assert float(found["budget"]) == 1000
        assert any(m.startswith("execution exited") for m in run.messages), run.messages
        assert any(m.startswith("execution started again") for m in run.messages), run.messages
        assert {name: run.pid(name) for name in others} == others  # nobody else restarted
        assert run.broker.process is not None and run.broker.process.poll() is None


class FakeChild:
    """A service process as the supervisor sees it."""

    def __init__(self, code: int | None = None) -> None:
        self.returncode = code
        self.pid = 1
        self.signals: list[int] = []

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        self.returncode = 0

    def wait(self, timeout: float | None = None) -> int | None:
        return self.returncode

    def kill(self) -> None:
        self.returncode = -9


def fake_platform(tmp_path: Path, policy: RestartPolicy) -> tuple[Platform, list[str]]:
    messages: list[str] = []
    platform = Platform(CommonSettings(data_dir=tmp_path), echo=messages.append, restart=policy)
    platform._spawn_args["execution"] = {"port": 1, "bootstrap": "b", "tokens": {}}
    platform._restarts["execution"] = _Restarts(started_at=0.0)
    platform.children["execution"] = FakeChild(code=1)  # type: ignore[assignment]
    platform._spawn = lambda *_a, **_k: FakeChild(code=1)  # type: ignore[method-assign,assignment,return-value]
    return platform, messages


def test_repeated_quick_crashes_make_the_supervisor_give_up_and_say_so(
    tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr("mrm.supervisor.time.monotonic", lambda: clock.now)
    platform, messages = fake_platform(
        tmp_path, RestartPolicy(initial_s=1.0, maximum_s=4.0, quick_crash_s=30, give_up_after=4)
    )
    delays = []
    for _ in range(10):
        platform.supervise_once()  # notices the crash, schedules the next start
        state = platform._restarts["execution"]
        if state.gave_up:
            break
        assert state.due_at is not None
        delays.append(state.due_at - clock.now)
        clock.now = state.due_at
        platform.supervise_once()  # starts it again; it crashes at once
    assert delays == [1.0, 2.0, 4.0]  # doubling, capped at 4
    assert platform.given_up() == ["execution"]
    assert "not starting it again" in messages[-1]
    platform.supervise_once()
    assert sum("started again" in m for m in messages) == 3


def test_a_crash_after_a_long_run_starts_the_count_again(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr("mrm.supervisor.time.monotonic", lambda: clock.now)
    platform, _ = fake_platform(tmp_path, RestartPolicy(initial_s=1.0, give_up_after=2))
    platform._restarts["execution"].crashes = 5
    platform.supervise_once()
    assert platform._restarts["execution"].crashes == 1
    assert platform.given_up() == []


def test_stop_signals_the_services_before_the_broker(tmp_path: Path) -> None:
    order: list[str] = []
    platform = Platform(CommonSettings(data_dir=tmp_path), echo=lambda _m: None)
    child = FakeChild()
    platform.children["planning"] = child  # type: ignore[assignment]
    platform.broker = SimpleNamespace(  # type: ignore[assignment]
        stop=lambda: order.append(f"broker after services got {child.signals}")
    )
    platform.stop()
    assert order == [f"broker after services got {[signal.SIGTERM]}"]


async def test_a_service_stops_consuming_then_flushes_its_outbox_then_disconnects() -> None:
    order: list[str] = []
    outbox = [3, 2, 0]

    class Subscriber:
        async def stop(self) -> None:
            order.append("stop consuming")

    class Broker:
        def __init__(self) -> None:
            self.subscribers = [Subscriber()]

        async def start(self) -> None:
            order.append("start")

        async def stop(self) -> None:
            order.append("disconnect")

    async def loop() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            order.append("background stopped")

    async def relay_once() -> int:
        published = outbox.pop(0)
        order.append(f"published {published}")
        return published

    broker: Any = Broker()
    async with broker_running(broker, background=[loop], drain=[relay_once]):
        await asyncio.sleep(0)
    assert order == [
        "start",
        "stop consuming",
        "background stopped",
        "published 3",
        "published 2",
        "published 0",
        "disconnect",
    ]


def test_an_embedded_broker_that_dies_is_started_again_on_its_port(tmp_path: Path) -> None:
    messages: list[str] = []
    platform = Platform(CommonSettings(data_dir=tmp_path), echo=messages.append)
    platform.broker = EmbeddedBroker().start()
    try:
        port, first = platform.broker.port, platform.broker.cluster_id
        assert platform.broker.process is not None
        platform.broker.process.kill()
        platform.broker.process.wait()
        platform.supervise_once()
        assert platform.broker.process.poll() is None
        assert (platform.broker.port, platform.broker.cluster_id != first) == (port, True)
        assert messages == [
            f"the embedded broker exited; starting an empty one on 127.0.0.1:{port}"
        ]
    finally:
        platform.stop()


def test_mrm_up_migrates_the_databases_before_it_starts_the_services(tmp_path: Path) -> None:
    """The services refuse a database that is not at head (migrating at start is off here, as
    in production); `mrm up` migrates first, so they start on its fresh data directory."""
    with running_platform(tmp_path, MRM_DATABASE_MIGRATE_ON_START="false") as run:
        assert [m for m in run.messages if "revision" in m] == [
            f"{service}: upgraded (at revision 0001)" for service in SQL_SERVICES
        ]
        with httpx.Client(timeout=10) as client:
            for url in run.urls.values():
                assert client.get(f"{url}/ready").status_code == 200
    for service in SQL_SERVICES:
        engine = make_engine(f"sqlite:///{tmp_path / f'{service}.db'}")
        try:
            assert current_revision(engine, settings_and_migrations(service)[1]) == "0001"
        finally:
            engine.dispose()
