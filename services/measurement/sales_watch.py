"""Running sales targets watched for risk: ``sales_target.at_risk`` / ``sales_target.recovered``
on ``mrm.kpi.v1``, by the replica that leads (``shared.leadership``), as the target monitor.

A run rate moves with time even when no sale arrives, so every round checks every target whose
period includes today (one sales query per distinct period, one state read, one insert). An
episode is announced once: the state of each target (at risk or not) lives in ``alert_state``
under ``sales_target:<target_id>``, and the event id derives from the target, the transition
and the version of the state it leaves (``domain.cause_event_id``) — two replicas, or a re-run
after a crash between publishing and saving, publish the same id, which consumers drop.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Callable

import structlog
from faststream.kafka import KafkaBroker

from services.measurement import domain, progress
from services.measurement.monitor import publish_cause
from services.measurement.warehouse import Warehouse, alerts, sales_targets
from shared.events import EventData
from shared.leadership import Turns
from shared.metrics import ServiceMetrics
from shared.money import FxRates

log = structlog.get_logger(__name__)
_KEY = "at_risk"


def subject_of(target_id: str) -> str:
    """The ``alert_state`` subject holding a sales target's risk state."""
    return f"sales_target:{target_id}"


class SalesTargetWatch:
    """Judges the running sales targets and publishes the start and end of at-risk episodes."""

    def __init__(
        self,
        *,
        warehouse: Warehouse,
        broker: KafkaBroker,
        metrics: ServiceMetrics,
        leadership: Turns,
        fx: FxRates,
        rule: progress.AtRiskRule,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.warehouse = warehouse
        self.broker = broker
        self.metrics = metrics
        self.leadership = leadership
        self.fx = fx
        self.rule = rule
        self.clock = clock

    async def check_running(self) -> None:
        """On the leader: judge every target whose period includes today."""
        async with self.leadership.turn() as term:
            if term is None:
                return
            await self.check(now=self.clock())

    async def check(self, *, now: dt.datetime) -> list[progress.AtRiskEvent]:
        """Judge the targets running at ``now``; publish and return the transitions, then save
        the states that changed."""
        running = await self.warehouse.run(sales_targets.targets_running, on=now.date())
        if not running:
            return []
        units = await self.warehouse.run(sales_targets.sales_units)
        subjects = [subject_of(t.target_id) for t in running]
        stored = await self.warehouse.run(alerts.alert_states_of, subjects=subjects)
        states = {
            t.target_id: stored[subject_of(t.target_id)][_KEY].on
            for t in running
            if _KEY in stored.get(subject_of(t.target_id), {})
        }
        spans: dict[tuple[dt.date, dt.date], list[progress.SalesTarget]] = defaultdict(list)
        for target in running:
            spans[(target.period_start, target.period_end)].append(target)
        published: list[progress.AtRiskEvent] = []
        for (start, end), targets in sorted(spans.items()):
            groups = await self.warehouse.run(sales_targets.sale_groups, start=start, end=end)
            for brand in sorted({t.brand for t in targets}, key=lambda b: b or ""):
                tree = progress.progress_tree(
                    units=units,
                    targets=targets,
                    groups=groups,
                    brand=brand,
                    start=start,
                    end=end,
                    now=now,
                    fx=self.fx,
                    rule=self.rule,
                )
                published += progress.transitions(
                    nodes=progress.walk(tree), states=states, rule=self.rule, now=now
                )
        for data in published:
            subject = subject_of(data.target_id)
            since = stored[subject][_KEY].version if _KEY in stored.get(subject, {}) else 0
            await self._publish(
                data, event_id=domain.cause_event_id(subject, data.event_type, since)
            )
            log.info(
                "sales_target_transition",
                event_type=data.event_type,
                target_id=data.target_id,
                unit_id=data.unit_id,
            )
        changed = {
            subject_of(data.target_id): {_KEY: data.event_type == "sales_target.at_risk"}
            for data in published
        }
        # the row version orders saved states: the wall clock, whatever ``now`` was judged at
        await self.warehouse.write(
            alerts.save_alert_states_of, states=changed, now=dt.datetime.now(dt.UTC)
        )
        return published

    async def _publish(self, data: EventData, *, event_id: uuid.UUID) -> None:
        await publish_cause(self.broker, data, event_id=event_id, metrics=self.metrics)
