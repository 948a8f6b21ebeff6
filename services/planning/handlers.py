"""Planning's subscribers: it listens to ``mrm.kpi.v1`` for reallocation proposals, to
``mrm.spend.v1`` for the actual spend its budget view shows, to ``mrm.sales.v1`` for the sales
its sales plans and reference splits start from, and to the broker watch for a reset of its own
topic (then it republishes its state)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from services.planning import (
    budget_store,
    budget_usecases,
    forecast_store,
    sales_store,
    sales_usecases,
    usecases,
)
from services.planning.store import Store
from shared.consumer import Consumed, EventConsumer
from shared.events.ingest import SaleCompleted, SpendRecorded
from shared.events.kpi import BudgetReallocationProposed, CampaignModelled
from shared.money import FxRates
from shared.outbox import OutboxRelay
from shared.topics import KPI, PLANNING, SALES, SPEND

log = structlog.get_logger(__name__)


def register(consumer: EventConsumer, *, db: Store, fx: FxRates) -> None:
    """Subscribe planning's handlers: one batch subscription, spend and sales each kept in one
    transaction per batch (those streams run at thousands of events a second)."""

    async def on_events(batch: Sequence[Consumed]) -> list[tuple[Consumed, str]]:
        spends = [
            budget_store.SpendRow(
                event_id=consumed.envelope.event_id,
                campaign_id=consumed.data.campaign_id,
                occurred_at=consumed.envelope.occurred_at,
                amount=consumed.data.amount,
                currency=consumed.data.currency,
            )
            for consumed in batch
            if isinstance(consumed.data, SpendRecorded)
        ]
        if spends:
            await asyncio.to_thread(budget_usecases.record_spend, db=db, spends=spends)
        sales = [
            sales_store.SaleRow(
                event_id=consumed.envelope.event_id,
                occurred_at=consumed.envelope.occurred_at,
                amount=consumed.data.amount,
                currency=consumed.data.currency,
                rep_id=consumed.data.rep_id,
                partner_id=consumed.data.partner_id,
                region=consumed.data.region,
                brand=consumed.data.brand,
            )
            for consumed in batch
            if isinstance(consumed.data, SaleCompleted)
        ]
        if sales:
            await asyncio.to_thread(sales_usecases.record_sales, db=db, sales=sales)
        for consumed in batch:
            if isinstance(consumed.data, CampaignModelled):
                kept = await asyncio.to_thread(
                    forecast_store.record_model,
                    db=db,
                    event_id=consumed.envelope.event_id,
                    model=consumed.data,
                )
                log.info("campaign_model_kept", campaign_id=consumed.data.campaign_id, kept=kept)
            if isinstance(consumed.data, BudgetReallocationProposed):
                status = await asyncio.to_thread(
                    budget_usecases.record_proposal,
                    db=db,
                    event_id=consumed.envelope.event_id,
                    proposal=consumed.data,
                    proposed_at=consumed.envelope.occurred_at,
                    fx=fx,
                )
                log.info(
                    "reallocation_proposed",
                    plan_id=consumed.data.plan_id,
                    rule_id=consumed.data.rule_id,
                    status=status,
                )
        return []

    consumer.on_batch(KPI, SPEND, SALES, handler=on_events)


async def on_topic_reset(topic: str, *, db: Store, relay: OutboxRelay) -> None:
    """The broker lost ``mrm.planning.v1`` (an embedded broker restarted empty): queue planning's
    whole current state again so every projection converges to it."""
    if topic != PLANNING:
        return
    queued = await asyncio.to_thread(usecases.republish_state, db=db)
    relay.wake()
    log.warning("planning_state_republished", topic=topic, events=queued)
