"""Measurement's subscriber: ingest and planning events into ClickHouse, in batches.

A batch is durable in ClickHouse before the handler returns, so its offsets (on every
partition it spans) are committed only then; a failed insert is retried whole, which is safe
because the tables collapse repeated event_ids and queries count each event_id once.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from services.measurement import analytics, domain
from services.measurement.analytics import StoredEvent, Warehouse
from shared.consumer import Consumed, EventConsumer
from shared.events.ingest import SaleCompleted, SpendRecorded
from shared.money import CurrencyNotConvertible, FxRates
from shared.topics import INGEST_TOPICS, PLANNING

log = structlog.get_logger(__name__)


class Ingestor:
    """Writes batches to the warehouse and remembers which campaigns changed."""

    def __init__(self, *, warehouse: Warehouse, fx: FxRates) -> None:
        self.warehouse = warehouse
        self.fx = fx
        self.changed: set[str] = set()

    async def on_events(self, batch: Sequence[Consumed]) -> list[tuple[Consumed, str]]:
        """Store a batch; return the messages rejected for their currency (→ DLQ)."""
        planning = [_stored(c, c.data) for c in batch if c.topic == PLANNING]
        if planning:
            await self.warehouse.run(analytics.insert_events, events=planning)
        accepted, rejected = await self._in_campaign_currency(
            [c for c in batch if c.topic != PLANNING]
        )
        if accepted:
            await self.warehouse.run(analytics.insert_events, events=accepted)
        for event in (*planning, *accepted):
            campaign_id = getattr(event.data, "campaign_id", None)
            if campaign_id:
                self.changed.add(campaign_id)
        return rejected

    async def _in_campaign_currency(
        self, batch: list[Consumed]
    ) -> tuple[list[StoredEvent], list[tuple[Consumed, str]]]:
        monetary = {
            c.data.campaign_id
            for c in batch
            if isinstance(c.data, SpendRecorded | SaleCompleted) and c.data.campaign_id
        }
        currencies = await self.warehouse.run(
            analytics.campaign_currencies, campaign_ids=sorted(monetary)
        )
        accepted, rejected = [], []
        for consumed in batch:
            campaign_id = getattr(consumed.data, "campaign_id", None)
            try:
                data = domain.in_campaign_currency(
                    consumed.data, campaign_currency=currencies.get(campaign_id), fx=self.fx
                )
            except CurrencyNotConvertible as exc:
                rejected.append((consumed, f"data.currency: {exc}"))
                continue
            accepted.append(_stored(consumed, data))
        return accepted, rejected


def _stored(consumed: Consumed, data: object) -> StoredEvent:
    return StoredEvent(
        envelope=consumed.envelope,
        data=data,  # type: ignore[arg-type]
        topic=consumed.topic,
        partition=consumed.partition,
        offset=consumed.offset,
    )


def register(consumer: EventConsumer, *, ingestor: Ingestor, max_records: int) -> None:
    """Subscribe measurement to every ingest topic and the planning topic, in batches."""
    consumer.on_batch(*INGEST_TOPICS, PLANNING, handler=ingestor.on_events, max_records=max_records)
