"""The periodic job: deadline reminders, overdue flags and forecasts that move with time."""

from __future__ import annotations

import asyncio
import datetime as dt

import structlog
from sqlalchemy import Engine

from services.execution import store, usecases
from shared.clock import Clock
from shared.money import FxRates
from shared.outbox import OutboxRelay

log = structlog.get_logger(__name__)


class Scheduler:
    """One ``tick()`` checks every open stage's deadline and every running campaign's forecast."""

    def __init__(
        self,
        *,
        engine: Engine,
        relay: OutboxRelay,
        clock: Clock,
        fx: FxRates,
        warning_window: dt.timedelta,
    ) -> None:
        self.engine = engine
        self.relay = relay
        self.clock = clock
        self.fx = fx
        self.warning_window = warning_window

    async def tick(self) -> None:
        """Run one round; wake the relay if it queued events."""
        queued = await asyncio.to_thread(self.tick_sync)
        if queued:
            log.info("scheduler_queued_events", count=queued)
            self.relay.wake()

    def tick_sync(self) -> int:
        """One round, blocking; returns how many events it queued."""
        now = self.clock.now()
        with store.unit_of_work(engine=self.engine) as session:
            queued = usecases.check_deadlines(session=session, now=now, window=self.warning_window)
        with store.unit_of_work(engine=self.engine) as session:
            campaign_ids = store.campaigns_to_watch(session=session)
        for campaign_id in campaign_ids:  # one short transaction per campaign
            with store.unit_of_work(engine=self.engine) as session:
                queued += usecases.reevaluate_budget(
                    session=session, campaign_id=campaign_id, now=now, fx=self.fx
                )
        return queued
