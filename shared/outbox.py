"""The outbox relay: publishes committed outbox rows to Kafka in order, then marks them sent.

Publication is at-least-once (a crash between publish and mark re-publishes the row with the
same ``event_id``, which consumers ignore).
"""

from __future__ import annotations

import asyncio

import structlog
from faststream.kafka import KafkaBroker
from sqlalchemy import Engine, func, select, update

from shared.events import Envelope
from shared.kafka import publish
from shared.metrics import ServiceMetrics
from shared.runtime import WakeableLoop
from shared.sql import MessagingTables, utcnow

log = structlog.get_logger(__name__)


class OutboxRelay:
    """Moves outbox rows to Kafka; ``wake()`` after a commit publishes without waiting a poll."""

    def __init__(
        self,
        *,
        engine: Engine,
        tables: MessagingTables,
        broker: KafkaBroker,
        metrics: ServiceMetrics,
        poll_interval_s: float = 0.5,
        batch_size: int = 500,
    ) -> None:
        self.engine = engine
        self.tables = tables
        self.broker = broker
        self.metrics = metrics
        self.poll_interval_s = poll_interval_s
        self.batch_size = batch_size
        self._rounds = WakeableLoop(
            self.relay_once,
            full_batch=batch_size,
            poll_interval_s=poll_interval_s,
            failure_event="outbox_relay_failed",
        )

    def wake(self) -> None:
        """Ask the relay to look at the outbox now (safe to call from any thread)."""
        self._rounds.wake()

    async def run(self) -> None:
        """Relay forever (until cancelled), surviving broker and database hiccups."""
        await self._rounds.run()

    async def relay_once(self) -> int:
        """Publish one batch of pending rows; return how many were published."""
        rows = await asyncio.to_thread(self._pending)
        for row_id, topic, key, payload in rows:
            envelope = Envelope.model_validate(payload)
            await publish(self.broker, envelope, topic=topic, key=key, metrics=self.metrics)
            await asyncio.to_thread(self._mark_published, row_id)
        return len(rows)

    def _pending(self) -> list[tuple[int, str, str | None, dict]]:
        outbox = self.tables.outbox
        with self.engine.connect() as connection:
            pending = connection.execute(
                select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
            ).scalar_one()
            self.metrics.outbox_pending.set(pending)
            rows = connection.execute(
                select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.payload)
                .where(outbox.c.published_at.is_(None))
                .order_by(outbox.c.id)
                .limit(self.batch_size)
            ).all()
        return [(row.id, row.topic, row.key, row.payload) for row in rows]

    def _mark_published(self, row_id: int) -> None:
        outbox = self.tables.outbox
        with self.engine.begin() as connection:
            connection.execute(
                update(outbox).where(outbox.c.id == row_id).values(published_at=utcnow())
            )
