"""Execution's subscriber: one batch of planning, spend and task events → one transaction.

The handler hands the batch, in order, to the use cases (``usecases.apply_events``) inside one
unit of work: processed event ids, state changes and outbox rows are committed together, then
the outbox relay is woken. Spend whose currency cannot be converted goes to the DLQ.
The per-topic ``on_<event>`` methods apply a single event the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy import Engine

from services.execution import store, usecases
from shared.clock import Clock
from shared.consumer import Consumed, Rejected
from shared.money import FxRates
from shared.outbox import OutboxRelay


class ExecutionHandlers:
    """The service's event subscribers, bound to its store, relay, clock and FX rates."""

    def __init__(self, *, engine: Engine, relay: OutboxRelay, clock: Clock, fx: FxRates) -> None:
        self.engine = engine
        self.relay = relay
        self.clock = clock
        self.fx = fx

    async def on_events(self, batch: Sequence[Consumed]) -> list[tuple[Consumed, str]]:
        """Apply a batch of ``mrm.planning.v1``, ``mrm.spend.v1`` and ``mrm.tasks.v1`` events
        in order; return the spend rejected for the DLQ (unconvertible currency)."""
        queued, rejected = await asyncio.to_thread(self._apply_in_transaction, batch)
        if queued:
            self.relay.wake()
        return [(batch[index], f"data.currency: {reason}") for index, reason in rejected.items()]

    async def on_planning_event(self, consumed: Consumed) -> None:
        """Project plans, campaigns, stages and budgets from ``mrm.planning.v1``."""
        await self._one(consumed)

    async def on_spend_recorded(self, consumed: Consumed) -> None:
        """Count spend against the campaign's budget (unconvertible currency → ``Rejected``)."""
        await self._one(consumed)

    async def on_task_status_changed(self, consumed: Consumed) -> None:
        """Apply a task tracker's stage status."""
        await self._one(consumed)

    async def _one(self, consumed: Consumed) -> None:
        rejected = await self.on_events([consumed])
        if rejected:
            raise Rejected(rejected[0][1])

    def _apply_in_transaction(self, batch: Sequence[Consumed]) -> tuple[int, dict[int, str]]:
        events = [
            usecases.Incoming(c.envelope.event_id, c.envelope.occurred_at, c.data) for c in batch
        ]
        with store.unit_of_work(engine=self.engine) as session:
            outcome = usecases.apply_events(
                session=session, events=events, now=self.clock.now(), fx=self.fx
            )
        return outcome.queued, outcome.rejected
