"""The delivery worker: sends due notifications and records each outcome with its event.

A round leases the due ``pending`` rows (so parallel workers never double-send), sends them
concurrently through the channel senders, then settles each one in its own transaction:
delivered → ``notification.delivered`` in the outbox; failed for good → ``notification.failed``;
otherwise the next attempt is scheduled with exponential backoff (see ``domain.RetryPolicy``).
A crash between sending and settling re-sends after the lease expires: the channel sees
at-least-once delivery, with a stable Message-ID / ``X-MRM-Notification-Id`` to dedup on.
Settling checks the lease is still this worker's: one whose lease ran out (a send slower than
the lease) records nothing, so the log and ``notification.*`` hold one outcome per attempt
of the lease holder, whichever replica it runs on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable

import structlog
from sqlalchemy import Engine

from services.notifier import domain, store
from services.notifier.metrics import NotifierMetrics
from services.notifier.senders import DeliveryError, Senders
from shared.runtime import WakeableLoop
from shared.sql import utcnow

log = structlog.get_logger(__name__)


class DeliveryWorker:
    """Background loop delivering notifications; ``wake()`` after recording new ones."""

    def __init__(
        self,
        *,
        engine: Engine,
        senders: Senders,
        policy: domain.RetryPolicy,
        metrics: NotifierMetrics,
        on_settled: Callable[[], None],
        clock: Callable[[], dt.datetime] = utcnow,
        poll_interval_s: float = 1.0,
        batch_size: int = 100,
        concurrency: int = 10,
        lease_s: float = 300.0,
    ) -> None:
        self.engine = engine
        self.senders = senders
        self.policy = policy
        self.metrics = metrics
        self.on_settled = on_settled
        self.clock = clock
        self.poll_interval_s = poll_interval_s
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.lease_s = lease_s
        # a failed round's leased rows are retried once their leases expire
        self._rounds = WakeableLoop(
            self.deliver_once,
            full_batch=batch_size,
            poll_interval_s=poll_interval_s,
            failure_event="delivery_round_failed",
        )

    def wake(self) -> None:
        """Ask the worker to look for due notifications now (safe to call from any thread)."""
        self._rounds.wake()

    async def run(self) -> None:
        """Deliver forever (until cancelled), surviving channel and database hiccups."""
        await self._rounds.run()

    async def deliver_once(self) -> int:
        """Send every due notification (up to a batch); return how many were attempted."""
        deliveries, leased_until = await asyncio.to_thread(self._claim)
        self.metrics.pending.set(len(deliveries))
        if not deliveries:
            return 0
        gate = asyncio.Semaphore(self.concurrency)

        async def deliver(delivery: domain.Delivery) -> None:
            async with gate:
                error, permanent = await self._send(delivery)
            await asyncio.to_thread(self._settle, delivery, error, permanent, leased_until)

        await asyncio.gather(*(deliver(delivery) for delivery in deliveries))
        self.on_settled()
        return len(deliveries)

    def _claim(self) -> tuple[list[domain.Delivery], dt.datetime]:
        now = self.clock()
        lease_until = now + dt.timedelta(seconds=self.lease_s)
        with store.UnitOfWork(self.engine) as uow:
            claimed = store.claim_due(
                session=uow.session, now=now, lease_until=lease_until, limit=self.batch_size
            )
            uow.commit()
        return claimed, lease_until

    async def _send(self, delivery: domain.Delivery) -> tuple[str | None, bool]:
        """Try one delivery; return (error or None, whether the error is permanent)."""
        if delivery.address is None:
            return f"recipient has no {delivery.channel} channel configured any more", True
        started = time.perf_counter()
        try:
            if delivery.channel == "email":
                await self.senders.email.send_email(
                    to=delivery.address,
                    subject=delivery.subject,
                    body=delivery.body,
                    message_id=delivery.id,
                )
            elif delivery.channel == "webhook":
                await self.senders.webhook.post_json(
                    url=delivery.address,
                    payload=domain.webhook_payload(delivery),
                    notification_id=delivery.id,
                )
            else:
                return f"unknown channel {delivery.channel!r}", True
        except DeliveryError as exc:
            return exc.reason, exc.permanent
        finally:
            self.metrics.delivery_seconds.labels(channel=delivery.channel).observe(
                time.perf_counter() - started
            )
        return None, False

    def _settle(
        self,
        delivery: domain.Delivery,
        error: str | None,
        permanent: bool,
        leased_until: dt.datetime,
    ) -> None:
        now = self.clock()
        settlement = domain.settle(
            delivery, error=error, permanent=permanent, policy=self.policy, now=now
        )
        with store.UnitOfWork(self.engine) as uow:
            held = store.settle_notification(
                session=uow.session,
                notification_id=delivery.id,
                settlement=settlement,
                now=now,
                leased_until=leased_until,
            )
            if not held:
                log.warning("notification_lease_lost", notification_id=delivery.id)
                return
            if settlement.event is not None and settlement.event_id is not None:
                uow.publish(data=settlement.event, event_id=settlement.event_id)
            uow.commit()
        outcome = "retry" if settlement.status == "pending" else settlement.status
        self.metrics.attempts.labels(channel=delivery.channel, outcome=outcome).inc()
        log.info(
            "notification_attempted",
            notification_id=delivery.id,
            recipient=delivery.recipient,
            channel=delivery.channel,
            outcome=outcome,
            attempts=settlement.attempts,
            error=error,
            next_attempt_at=settlement.next_attempt_at.isoformat()
            if settlement.next_attempt_at
            else None,
        )
