"""Helpers of the broker-restart and supervisor tests: an ``mrm up``-style platform (the four
services as processes under the real supervisor) on an embedded broker the test can kill and
start again on the same port, and small HTTP helpers that poll with a deadline."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from mrm.runtime import SERVICES, Runtime
from mrm.supervisor import Platform, RestartPolicy
from shared.embedded import EmbeddedBroker, free_port
from shared.settings import CommonSettings

T = TypeVar("T")

ADMIN_TOKEN = "restart-admin"
TOKENS = {ADMIN_TOKEN: {"subject": "root", "role": "admin"}}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PARTITIONS = 3  # differs from Tansu's auto-creation default (4), so the test tells them apart


@dataclass
class RunningPlatform:
    """A started platform, its broker and the supervisor thread restarting its services."""

    platform: Platform
    broker: EmbeddedBroker
    runtime: Runtime
    messages: list[str]

    @property
    def urls(self) -> dict[str, str]:
        return self.runtime.urls

    def pid(self, service: str) -> int:
        return self.platform.children[service].pid


@contextmanager
def running_platform(data_dir: Path, **env: str) -> Iterator[RunningPlatform]:
    """Start the four services (as ``mrm up`` does) on their own embedded broker; the
    supervisor restarts a crashed service after a short back-off."""
    overrides = {f"MRM_{name.upper()}_PORT": str(free_port()) for name in SERVICES}
    overrides.update(
        {
            "MRM_TOKENS": json.dumps(TOKENS),
            "MRM_SMTP_HOST": "127.0.0.1",  # no development mailbox: nothing here sends e-mail
            "MRM_SMTP_PORT": str(free_port()),
            "MRM_TOPIC_PARTITIONS": str(PARTITIONS),
            **env,
        }
    )
    saved = {key: os.environ.get(key) for key in overrides}
    os.environ.update(overrides)
    broker = EmbeddedBroker(log_file=data_dir / "broker.log").start()
    messages: list[str] = []
    platform = Platform(
        CommonSettings(kafka_bootstrap=broker.bootstrap, data_dir=data_dir, tokens=TOKENS),
        echo=messages.append,
        restart=RestartPolicy(initial_s=0.5, maximum_s=2.0),
    )
    stop = threading.Event()
    supervisor = threading.Thread(target=platform.supervise, args=(stop,), daemon=True)
    try:
        runtime = platform.start()
        supervisor.start()
        yield RunningPlatform(platform=platform, broker=broker, runtime=runtime, messages=messages)
    finally:
        stop.set()
        if supervisor.is_alive():
            supervisor.join(timeout=5)
        platform.stop()
        broker.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def wait_for(
    probe: Callable[[], T | None], *, timeout_s: float, every_s: float = 0.25, what: str = ""
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f} s: {what or probe}")
        time.sleep(every_s)


def create_campaign(client: httpx.Client, planning: str, *, tag: str) -> str:
    """A plan with one campaign through planning's API; returns the campaign id."""
    plan = client.post(
        f"{planning}/api/v1/plans",
        json={"name": f"plan {tag}", "period_start": "2026-01-01", "period_end": "2026-12-31"},
        headers=ADMIN,
    )
    assert plan.status_code == 201, plan.text
    campaign = client.post(
        f"{planning}/api/v1/plans/{plan.json()['plan_id']}/campaigns",
        json={
            "name": f"campaign {tag}",
            "channel": "search",
            "owner": "ann",
            "budget": "1000",
            "start_date": "2026-02-01",
            "end_date": "2026-03-01",
        },
        headers=ADMIN,
    )
    assert campaign.status_code == 201, campaign.text
    return str(campaign.json()["campaign_id"])


def progress(client: httpx.Client, execution: str, campaign_id: str) -> dict[str, Any] | None:
    """Execution's projection of a campaign, or None while it does not know it."""
    try:
        answer = client.get(f"{execution}/api/v1/campaigns/{campaign_id}/progress", headers=ADMIN)
    except httpx.HTTPError:
        return None
    return answer.json() if answer.status_code == 200 else None


def ready(url: str, *, timeout_s: float = 2.0) -> tuple[int, dict[str, Any]]:
    """``/ready``'s status and checks; raises if it takes longer than ``timeout_s``."""
    answer = httpx.get(f"{url}/ready", timeout=timeout_s)
    return answer.status_code, answer.json().get("checks", {})


def tag() -> str:
    return uuid.uuid4().hex[:8]
