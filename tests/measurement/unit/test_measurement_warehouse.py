"""Warehouse: writes one at a time on the writer, reads on a pool of readers in parallel;
the target monitor looks up targets once per round and evaluates a bounded number."""

from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal as D
from typing import Any

from services.measurement import analytics
from services.measurement.analytics import Warehouse
from services.measurement.domain import Target
from services.measurement.monitor import TargetMonitor
from shared.metrics import ServiceMetrics


def _sleepy(client: Any, *, seconds: float, seen: list[tuple[Any, str]]) -> Any:
    seen.append((client, threading.current_thread().name))
    time.sleep(seconds)
    return client


async def test_reads_use_the_readers_in_parallel_and_writes_the_writer() -> None:
    warehouse = Warehouse("writer", readers=["r1", "r2"])  # type: ignore[arg-type]
    seen: list[tuple[Any, str]] = []
    started = time.perf_counter()
    results = await asyncio.gather(
        *(warehouse.run(_sleepy, seconds=0.2, seen=seen) for _ in range(4))
    )
    assert sorted(results) == ["r1", "r1", "r2", "r2"]
    assert time.perf_counter() - started < 0.7  # two at a time, not four in a row
    assert await warehouse.write(_sleepy, seconds=0, seen=seen) == "writer"


async def test_without_readers_everything_shares_the_writer() -> None:
    warehouse = Warehouse("writer")  # type: ignore[arg-type]
    assert await warehouse.run(_sleepy, seconds=0, seen=[]) == "writer"


async def test_a_cancelled_read_returns_its_reader_only_when_the_call_is_over() -> None:
    warehouse = Warehouse("writer", readers=["r1"])  # type: ignore[arg-type]
    seen: list[tuple[Any, str]] = []
    slow = asyncio.create_task(warehouse.run(_sleepy, seconds=0.3, seen=seen))
    await asyncio.sleep(0.05)
    slow.cancel()
    started = time.perf_counter()
    assert await warehouse.run(_sleepy, seconds=0, seen=seen) == "r1"
    assert time.perf_counter() - started > 0.15  # waited for the running call to finish


class _Warehouse:
    """Answers the monitor's queries with fixed KPIs; records what it was asked."""

    def __init__(self, with_targets: set[str]) -> None:
        self.with_targets = with_targets
        self.lookups: list[list[str]] = []
        self.kpis: list[list[str]] = []
        self.saved: list[dict[str, dict[str, bool]]] = []

    async def run(self, function: Any, /, **kwargs: Any) -> Any:
        if function is analytics.targets_by_campaign:
            self.lookups.append(list(kwargs["campaign_ids"]))
            return {c: [_target(c)] for c in kwargs["campaign_ids"] if c in self.with_targets}
        if function is analytics.campaigns_kpis:
            self.kpis.append(list(kwargs["campaign_ids"]))
            return {
                c: {"plan_id": "p1", "spend": D(100), "budget": D(1000), "cpl": D(80)}
                for c in kwargs["campaign_ids"]
            }
        if function is analytics.alert_states_of:
            return {}
        raise AssertionError(function)

    async def write(self, function: Any, /, **kwargs: Any) -> Any:
        assert function is analytics.save_alert_states_of
        self.saved.append(kwargs["states"])


def _target(campaign_id: str) -> Target:
    return Target(
        target_id=f"t-{campaign_id}",
        campaign_id=campaign_id,
        kpi="cpl",
        target=D(50),
        direction="lower_is_better",
    )


async def test_monitor_checks_a_bounded_number_of_campaigns_in_a_few_queries() -> None:
    warehouse = _Warehouse({f"c{n}" for n in range(0, 10, 2)})
    changed = {f"c{n}" for n in range(10)}
    published: list[Any] = []
    monitor = TargetMonitor(
        warehouse=warehouse,  # type: ignore[arg-type]
        broker=None,  # type: ignore[arg-type]
        metrics=ServiceMetrics("test_monitor"),
        changed=changed,
        max_per_round=2,
    )

    async def publish(data: Any) -> None:
        published.append(data)

    monitor._publish = publish  # type: ignore[method-assign]
    await monitor.evaluate_changed()
    # one target lookup for all ten, one KPI query for the two evaluated
    assert warehouse.lookups == [[f"c{n}" for n in range(10)]]
    assert warehouse.kpis == [["c0", "c2"]]
    assert [(p.campaign_id, p.event_type) for p in published] == [
        ("c0", "kpi.target_breached"),
        ("c2", "kpi.target_breached"),
    ]
    assert warehouse.saved == [{"c0": {"t-c0": True}, "c2": {"t-c2": True}}]
    assert changed == {"c4", "c6", "c8"}  # the rest wait for the next round
    await monitor.evaluate_changed()
    await monitor.evaluate_changed()
    assert warehouse.kpis == [["c0", "c2"], ["c4", "c6"], ["c8"]] and not changed
    assert monitor.plans == {"p1"}  # the reallocation rule looks at the plan next
