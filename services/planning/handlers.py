"""Planning's subscribers: it listens to ``mrm.kpi.v1`` for reallocation proposals, and to the
broker watch for a reset of its own topic (then it republishes its state)."""

from __future__ import annotations

import asyncio

import structlog

from services.planning import usecases
from services.planning.store import Store
from shared.consumer import Consumed, EventConsumer
from shared.events.kpi import BudgetReallocationProposed
from shared.outbox import OutboxRelay
from shared.topics import KPI, PLANNING

log = structlog.get_logger(__name__)


def register(consumer: EventConsumer, *, db: Store) -> None:
    """Subscribe planning's handlers."""

    async def on_kpi_event(consumed: Consumed) -> None:
        if not isinstance(consumed.data, BudgetReallocationProposed):
            return
        recorded = await asyncio.to_thread(
            usecases.record_proposal,
            db=db,
            event_id=consumed.envelope.event_id,
            proposal=consumed.data,
            proposed_at=consumed.envelope.occurred_at,
        )
        log.info("reallocation_proposed", plan_id=consumed.data.plan_id, recorded=recorded)

    consumer.on(KPI, handler=on_kpi_event)


async def on_topic_reset(topic: str, *, db: Store, relay: OutboxRelay) -> None:
    """The broker lost ``mrm.planning.v1`` (an embedded broker restarted empty): queue planning's
    whole current state again so every projection converges to it."""
    if topic != PLANNING:
        return
    queued = await asyncio.to_thread(usecases.republish_state, db=db)
    relay.wake()
    log.warning("planning_state_republished", topic=topic, events=queued)
