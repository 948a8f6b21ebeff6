"""Warehouse: writes one at a time on the writer, reads on a pool of readers in parallel;
the target monitor reads the change log, evaluates a bounded number of campaigns per round
and derives its event ids from their cause."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal as D
from typing import Any

from services.measurement.domain import Target
from services.measurement.monitor import TargetMonitor
from services.measurement.warehouse import Warehouse, alerts, campaigns_kpis, targets_by_campaign
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
    """Answers the monitor's queries with fixed KPIs and a change log; records what it was
    asked and what it saved."""

    def __init__(self, with_targets: set[str], changed: list[str]) -> None:
        self.with_targets = with_targets
        self.changed = changed
        self.lookups: list[list[str]] = []
        self.kpis: list[list[str]] = []
        self.saved: list[dict[str, dict[str, bool]]] = []
        self.states: dict[str, dict[str, alerts.AlertState]] = {}
        self.marks: dict[str, int] = {}

    async def run(self, function: Any, /, **kwargs: Any) -> Any:
        if function is alerts.settled_bound:
            return 5_000
        if function is alerts.read_mark:
            return self.marks.get(kwargs["job"])
        if function is alerts.changed_between:
            assert (kwargs["after_ms"], kwargs["until_ms"]) == (0, 5_000)
            return self.changed
        if function is targets_by_campaign:
            self.lookups.append(list(kwargs["campaign_ids"]))
            return {c: [_target(c)] for c in kwargs["campaign_ids"] if c in self.with_targets}
        if function is campaigns_kpis:
            self.kpis.append(list(kwargs["campaign_ids"]))
            return {
                c: {"plan_id": "p1", "spend": D(100), "budget": D(1000), "cpl": D(80)}
                for c in kwargs["campaign_ids"]
            }
        if function is alerts.alert_states_of:
            return {s: self.states[s] for s in kwargs["subjects"] if s in self.states}
        raise AssertionError(function)

    async def write(self, function: Any, /, **kwargs: Any) -> Any:
        if function is alerts.save_mark:
            self.marks[kwargs["job"]] = kwargs["upto_ms"]
            return
        assert function is alerts.save_alert_states_of
        self.saved.append(kwargs["states"])


class _Leadership:
    """Leads (term 1) unless told otherwise."""

    def __init__(self, *, leading: bool = True) -> None:
        self.leading = leading

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[int | None]:
        yield 1 if self.leading else None


def _target(campaign_id: str) -> Target:
    return Target(
        target_id=f"t-{campaign_id}",
        campaign_id=campaign_id,
        kpi="cpl",
        target=D(50),
        direction="lower_is_better",
    )


def _monitor(warehouse: _Warehouse, *, leading: bool = True) -> tuple[TargetMonitor, list]:
    published: list[tuple[Any, uuid.UUID]] = []
    monitor = TargetMonitor(
        warehouse=warehouse,  # type: ignore[arg-type]
        broker=None,  # type: ignore[arg-type]
        metrics=ServiceMetrics("test_monitor"),
        leadership=_Leadership(leading=leading),
        max_per_round=2,
    )

    async def publish(data: Any, *, event_id: uuid.UUID) -> None:
        published.append((data, event_id))

    monitor._publish = publish  # type: ignore[method-assign]
    return monitor, published


async def test_monitor_checks_a_bounded_number_of_campaigns_in_a_few_queries() -> None:
    warehouse = _Warehouse({f"c{n}" for n in range(0, 10, 2)}, [f"c{n}" for n in range(10)])
    monitor, published = _monitor(warehouse)
    await monitor.evaluate_changed()
    # one target lookup for the ten changed, then one per evaluated round; one KPI query
    assert warehouse.lookups == [[f"c{n}" for n in range(10)], ["c0", "c2"]]
    assert warehouse.kpis == [["c0", "c2"]]
    assert [(p.campaign_id, p.event_type) for p, _ in published] == [
        ("c0", "kpi.target_breached"),
        ("c2", "kpi.target_breached"),
    ]
    assert warehouse.saved == [{"c0": {"t-c0": True}, "c2": {"t-c2": True}}]
    assert warehouse.marks == {}  # c4, c6, c8 wait for the next rounds: no mark yet
    await monitor.evaluate_changed()
    await monitor.evaluate_changed()
    assert warehouse.kpis == [["c0", "c2"], ["c4", "c6"], ["c8"]]
    assert warehouse.marks == {"evaluate": 5_000}  # all read is handled


async def test_a_follower_does_nothing() -> None:
    warehouse = _Warehouse({"c0"}, ["c0"])
    monitor, published = _monitor(warehouse, leading=False)
    await monitor.evaluate_changed()
    await monitor.snapshot_active()
    assert published == [] and warehouse.kpis == [] and warehouse.marks == {}


async def test_two_monitors_deciding_from_the_same_state_publish_the_same_event_id() -> None:
    """The overlap of two leaders during a rebalance repeats an event id (deduped downstream)
    instead of making a second alert; the next episode of the same target gets a new id."""
    first, second = _Warehouse({"c0"}, ["c0"]), _Warehouse({"c0"}, ["c0"])
    monitor_a, published_a = _monitor(first)
    monitor_b, published_b = _monitor(second)
    await monitor_a.evaluate_changed()
    await monitor_b.evaluate_changed()
    [(breach_a, id_a)], [(breach_b, id_b)] = published_a, published_b
    assert breach_a == breach_b and id_a == id_b

    later = _Warehouse({"c0"}, ["c0"])  # the same target breached again after a recovery
    later.states = {"c0": {"t-c0": alerts.AlertState(on=False, version=1_234)}}
    monitor_c, published_c = _monitor(later)
    await monitor_c.evaluate_changed()
    [(_, id_c)] = published_c
    assert id_c != id_a
