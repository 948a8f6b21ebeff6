"""Leadership among a service's replicas, through a Kafka consumer group.

Work that must be done by one replica at a time (measurement's target monitor: one alert, one
snapshot, one proposal per cause) runs only on the leader. Every replica joins consumer group
``group_id`` on a one-partition topic that nobody writes to; the member the group assigns
partition 0 leads. The coordinator gives a partition to one member per generation, and with
Kafka's eager rebalance protocol a member gives its partitions up (``on_partitions_revoked``)
before it rejoins, i.e. before the group can move on: here the revocation waits for the
leader's rounds in flight (``turn``) to end, so the next leader starts after the last round of
the previous one. A member that stalls past the rebalance timeout is dropped from the group
while it may still be in a round; for that overlap the leader-only work publishes events whose
ids derive from their cause, which consumers dedupe on.

Only partition 0 counts, so a topic re-created with more partitions (e.g. auto-created after a
broker lost it) still has one leader. Needs no database: a service with only ClickHouse (no
transactions, no row locks) can use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from shared.kafka_config import PLAINTEXT, KafkaOptions
from shared.topic_admin import ensure_topics

log = structlog.get_logger(__name__)


class Turns(Protocol):
    """The port leader-only work depends on (``Leadership``, or a fake in tests)."""

    def turn(self) -> AbstractAsyncContextManager[int | None]:
        """A round of leader-only work: the leadership term, or None when not leading."""
        ...


class Leadership:
    """Whether this replica leads; ``turn()`` brackets a round of leader-only work."""

    def __init__(
        self,
        *,
        bootstrap: str,
        topic: str,
        group_id: str,
        client_id: str,
        heartbeat_interval_ms: int = 1000,
        session_timeout_ms: int = 6000,
        kafka: KafkaOptions = PLAINTEXT,
    ) -> None:
        self.bootstrap = bootstrap
        self.kafka = kafka
        self.topic = topic
        self.group_id = group_id
        self.client_id = client_id
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.session_timeout_ms = session_timeout_ms
        self.term = 0
        """Incremented each time this replica becomes leader (its in-memory progress is
        per term: a new term starts from what the previous leader saved)."""
        self._leading = False
        self._rounds = 0
        self._idle = asyncio.Condition()

    @property
    def leading(self) -> bool:
        """Whether this replica holds partition 0 now."""
        return self._leading

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[int | None]:
        """A round of leader-only work: yields the current term, or None when not leading.

        Leadership is not given up while a round is in flight (the revocation waits)."""
        if not self._leading:
            yield None
            return
        self._rounds += 1
        try:
            yield self.term
        finally:
            async with self._idle:
                self._rounds -= 1
                self._idle.notify_all()

    async def run(self) -> None:
        """Take part in the election until cancelled; the group is left on the way out."""
        await asyncio.to_thread(
            ensure_topics,
            self.bootstrap,
            [self.topic],
            kafka=self.kafka,
            single_partition=[self.topic],
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            client_id=self.client_id,
            enable_auto_commit=False,
            heartbeat_interval_ms=self.heartbeat_interval_ms,
            session_timeout_ms=self.session_timeout_ms,
            # a topic re-created after a broker reset is seen within seconds (aiokafka's default
            # is five minutes, and until then nobody would lead)
            metadata_max_age_ms=5000,
            **self.kafka.security.aiokafka(),
        )
        consumer.subscribe([self.topic], listener=_Listener(self))
        await consumer.start()
        try:
            while True:  # polling keeps the membership (aiokafka's max_poll_interval_ms)
                await consumer.getmany(timeout_ms=1000)
        finally:
            await self._step_down()
            await consumer.stop()

    async def _step_down(self) -> None:
        if self._leading:
            log.info("leadership_lost", group=self.group_id, term=self.term)
        self._leading = False
        async with self._idle:
            await self._idle.wait_for(lambda: self._rounds == 0)

    def _take_over(self, assigned: set[TopicPartition]) -> None:
        if TopicPartition(self.topic, 0) in assigned and not self._leading:
            self.term += 1
            self._leading = True
            log.info("leadership_gained", group=self.group_id, term=self.term)


class _Listener(ConsumerRebalanceListener):
    def __init__(self, leadership: Leadership) -> None:
        self.leadership = leadership

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.leadership._step_down()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.leadership._take_over(set(assigned))
