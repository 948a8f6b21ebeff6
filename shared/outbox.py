"""The outbox relay: publishes committed outbox rows to Kafka in order, then marks them sent.

Publication is at-least-once (a crash between publish and mark re-publishes the row with the
same ``event_id``, which consumers ignore).

Replicas: every replica of a service runs a relay over the same outbox, and one relay at a
time publishes. So each row is published once, not once per replica, and rows go out in outbox
order, which keeps a key's events (a campaign's ``campaign.planned`` before its
``budget.allocated``) in order on their partition. Claiming rows per relay (``FOR UPDATE SKIP
LOCKED`` alone) would also publish each row once, but two relays publishing interleaved
batches would reorder a key's events. A relay takes its turn for one round:

* PostgreSQL (any backend with row locks): the round holds a row lock on the service's lease
  row (``SELECT … FOR UPDATE SKIP LOCKED`` on ``<prefix>_outbox_lease``) in a transaction that
  lasts exactly as long as the round; a relay that finds the row locked sits the round out.
  The server frees the lock when the holder's transaction or connection ends, so a dead
  replica never blocks the others, and no relay publishes without holding it.
* SQLite (no row locks; replicas share the file, hence one machine and one clock): the lease
  row names a holder and an expiry, taken and renewed by a compare-and-set ``UPDATE``; the
  holder publishes only during the first half of its term, so a relay that outlived its lease
  stops before another may take it. A stopping relay gives its lease back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from faststream.kafka import KafkaBroker
from sqlalchemy import Connection, Engine, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from shared.events import Envelope
from shared.kafka import publish
from shared.metrics import ServiceMetrics
from shared.runtime import WakeableLoop
from shared.sql import MessagingTables, utcnow
from shared.tracing import TRACE_KEY, context_of_carrier

log = structlog.get_logger(__name__)

RELAY_LEASE = "relay"
"""The name of the relay's row in ``<prefix>_outbox_lease``."""


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
        lease_s: float = 30.0,
    ) -> None:
        self.engine = engine
        self.tables = tables
        self.broker = broker
        self.metrics = metrics
        self.poll_interval_s = poll_interval_s
        self.batch_size = batch_size
        self.lease_s = lease_s
        self.holder = uuid.uuid4().hex
        self._row_locks = engine.dialect.name != "sqlite"
        self._lease_row_ready = False
        self._taking: asyncio.Future[float | None] | None = None
        self._lease_until = -math.inf  # monotonic end of the time lease's publishing half
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
        try:
            await self._rounds.run()
        finally:
            if not self._row_locks:
                await self._give_lease_back()

    async def relay_once(self) -> int:
        """Publish one batch of pending rows if it is this relay's turn; return how many."""
        async with self._turn() as until:
            if until is None:
                return 0  # another replica's relay is publishing
            rows = await asyncio.to_thread(self._pending)
            published = 0
            for row_id, topic, key, payload in rows:
                if time.monotonic() >= until:
                    break  # the lease runs out: the next round renews it first
                carrier = payload.pop(TRACE_KEY, None)
                envelope = Envelope.model_validate(payload)
                await publish(
                    self.broker,
                    envelope,
                    topic=topic,
                    key=key,
                    metrics=self.metrics,
                    trace_parent=context_of_carrier(carrier),
                )
                await asyncio.to_thread(self._mark_published, row_id)
                published += 1
            return published

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[float | None]:
        """This relay's turn: the monotonic time until which it may publish, or None."""
        if not self._row_locks:
            # shielded: a cancelled round leaves the take to finish, so the lease given back
            # on the way out (``run``) is not taken again behind it
            self._taking = asyncio.ensure_future(asyncio.to_thread(self._take_lease))
            yield await asyncio.shield(self._taking)
            return
        locking = asyncio.ensure_future(asyncio.to_thread(self._lock_turn))
        try:
            connection = await asyncio.shield(locking)
        except asyncio.CancelledError:
            # the thread goes on and may take the lock: close its connection when it is done,
            # or the lock would stay held by a relay that is gone
            locking.add_done_callback(_close_taken)
            raise
        if connection is None:
            yield None
            return
        try:
            yield math.inf
        finally:
            # ends the round's transaction, which frees the lease row for the other relays
            await asyncio.to_thread(connection.close)

    def _lock_turn(self) -> Connection | None:
        """Begin a transaction holding the lease row's lock; None when another holds it."""
        self._ensure_lease_row()
        lease = self.tables.lease
        connection = self.engine.connect()
        try:
            connection.begin()
            held = connection.execute(
                select(lease.c.name)
                .where(lease.c.name == RELAY_LEASE)
                .with_for_update(skip_locked=True)
            ).first()
        except BaseException:
            connection.close()
            raise
        if held is None:
            connection.close()
            return None
        return connection

    def _take_lease(self) -> float | None:
        """Take or renew the time lease (compare-and-set); the local deadline, or None.

        A lease with more than a quarter of its term left to publish in is kept as it is
        (a write per round would compete with the service's own writers for the file)."""
        if time.monotonic() < self._lease_until - self.lease_s / 4:
            return self._lease_until
        self._ensure_lease_row()
        lease = self.tables.lease
        started, now = time.monotonic(), utcnow()
        with self.engine.begin() as connection:
            taken = connection.execute(
                update(lease)
                .where(
                    lease.c.name == RELAY_LEASE,
                    or_(
                        lease.c.holder == self.holder,
                        lease.c.expires_at.is_(None),
                        lease.c.expires_at <= now,
                    ),
                )
                .values(holder=self.holder, expires_at=now + dt.timedelta(seconds=self.lease_s))
            ).rowcount
        self._lease_until = started + self.lease_s / 2 if taken == 1 else -math.inf
        return self._lease_until if taken == 1 else None

    async def _give_lease_back(self) -> None:
        lease = self.tables.lease

        def release() -> None:
            with self.engine.begin() as connection:
                connection.execute(
                    update(lease)
                    .where(lease.c.name == RELAY_LEASE, lease.c.holder == self.holder)
                    .values(holder=None, expires_at=None)
                )

        try:
            if self._taking is not None:
                await asyncio.wait([self._taking])
            await asyncio.to_thread(release)
        except SQLAlchemyError as exc:  # it expires by itself
            log.warning("outbox_lease_not_released", error=repr(exc))

    def _ensure_lease_row(self) -> None:
        if self._lease_row_ready:
            return
        lease = self.tables.lease
        try:
            with self.engine.begin() as connection:
                exists = connection.execute(
                    select(lease.c.name).where(lease.c.name == RELAY_LEASE)
                ).first()
                if exists is None:
                    connection.execute(insert(lease).values(name=RELAY_LEASE))
        except IntegrityError:
            pass  # another replica inserted it meanwhile
        self._lease_row_ready = True

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


def _close_taken(locking: asyncio.Future[Connection | None]) -> None:
    """Close the connection (ending its transaction and lock) a cancelled round took."""
    if locking.cancelled() or locking.exception() is not None:
        return
    connection = locking.result()
    if connection is not None:
        connection.close()
