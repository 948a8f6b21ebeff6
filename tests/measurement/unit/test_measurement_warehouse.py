"""Warehouse: writes one at a time on the writer, reads on a pool of readers in parallel;
the target monitor looks up targets once per round and evaluates a bounded number."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from services.measurement import analytics
from services.measurement.analytics import Warehouse
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
    """Answers the monitor's target lookup; records which campaigns it evaluated."""

    def __init__(self, with_targets: set[str]) -> None:
        self.with_targets = with_targets
        self.lookups: list[list[str]] = []
        self.kpis: list[str] = []

    async def run(self, function: Any, /, **kwargs: Any) -> Any:
        if function is analytics.targets_by_campaign:
            self.lookups.append(list(kwargs["campaign_ids"]))
            return {c: ["target"] for c in kwargs["campaign_ids"] if c in self.with_targets}
        raise AssertionError(function)


async def test_monitor_looks_up_targets_once_and_evaluates_a_bounded_number() -> None:
    warehouse = _Warehouse({f"c{n}" for n in range(0, 10, 2)})
    changed = {f"c{n}" for n in range(10)}
    monitor = TargetMonitor(
        warehouse=warehouse,  # type: ignore[arg-type]
        broker=None,  # type: ignore[arg-type]
        metrics=ServiceMetrics("test_monitor"),
        changed=changed,
        max_per_round=2,
    )
    evaluated: list[str] = []

    async def evaluate(campaign_id: str, *, targets: list[Any]) -> list[Any]:
        evaluated.append(campaign_id)
        return []

    monitor.evaluate = evaluate  # type: ignore[method-assign]
    await monitor.evaluate_changed()
    assert len(warehouse.lookups) == 1 and evaluated == ["c0", "c2"]
    assert changed == {"c4", "c6", "c8"}  # the rest wait for the next round
    await monitor.evaluate_changed()
    await monitor.evaluate_changed()
    assert evaluated == ["c0", "c2", "c4", "c6", "c8"] and not changed
