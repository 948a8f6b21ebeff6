"""Execution's subscribers: one per topic, each a thin ``on_<event>`` → use case in one transaction.

Every handler claims the event's id in the inbox, runs its use case and writes the outbox rows
in the same transaction, commits, then wakes the outbox relay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from sqlalchemy import Engine

from services.execution import service, store
from shared.clock import Clock
from shared.consumer import Consumed, Rejected
from shared.events import EventData
from shared.events.planning import (
    BudgetAllocated,
    BudgetReallocated,
    CampaignPlanned,
    CampaignStatusChanged,
    CampaignUpdated,
    PlanCreated,
    StageScheduled,
)
from shared.money import CurrencyNotConvertible, FxRates
from shared.outbox import OutboxRelay

log = structlog.get_logger(__name__)

UseCase = Callable[..., int]

PLANNING_USE_CASES: dict[type[EventData], UseCase] = {
    PlanCreated: service.apply_plan_created,
    CampaignPlanned: service.apply_campaign_state,
    CampaignUpdated: service.apply_campaign_state,
    CampaignStatusChanged: service.apply_campaign_status,
    StageScheduled: service.apply_stage_scheduled,
    BudgetAllocated: service.apply_budget_allocated,
    BudgetReallocated: service.apply_budget_reallocated,
}
"""The planning events execution projects; the others on the topic are not its concern."""


class ExecutionHandlers:
    """The service's event subscribers, bound to its store, relay, clock and FX rates."""

    def __init__(self, *, engine: Engine, relay: OutboxRelay, clock: Clock, fx: FxRates) -> None:
        self.engine = engine
        self.relay = relay
        self.clock = clock
        self.fx = fx

    async def on_planning_event(self, consumed: Consumed) -> None:
        """Project plans, campaigns, stages and budgets from ``mrm.planning.v1``."""
        use_case = PLANNING_USE_CASES.get(type(consumed.data))
        if use_case is not None:
            await self._apply(consumed, use_case)

    async def on_spend_recorded(self, consumed: Consumed) -> None:
        """Count spend against the campaign's budget (unconvertible currency → DLQ)."""
        try:
            await self._apply(consumed, service.record_spend)
        except CurrencyNotConvertible as exc:
            raise Rejected(f"data.currency: {exc}") from None

    async def on_task_status_changed(self, consumed: Consumed) -> None:
        """Apply a task tracker's stage status."""
        await self._apply(consumed, service.apply_task_status)

    async def _apply(self, consumed: Consumed, use_case: UseCase) -> None:
        queued = await asyncio.to_thread(self._apply_in_transaction, consumed, use_case)
        if queued:
            self.relay.wake()

    def _apply_in_transaction(self, consumed: Consumed, use_case: UseCase) -> int:
        envelope = consumed.envelope
        with store.unit_of_work(engine=self.engine) as session:
            if not store.claim(session=session, event_id=envelope.event_id):
                log.info("duplicate_skipped", event_id=str(envelope.event_id))
                return 0
            inputs = service.Inputs(
                event_id=envelope.event_id,
                occurred_at=envelope.occurred_at,
                now=self.clock.now(),
                fx=self.fx,
            )
            return use_case(session=session, data=consumed.data, inputs=inputs)
