"""A service's view of its broker, kept up to date in the background: reachability, topics,
resets and consumer progress.

Why a background watch instead of asking the broker on each request: a probe that talks to
the broker from ``/ready`` waits as long as the client's reconnect back-off when the broker is
gone (15 s and more); here ``/ready`` reads the result of the last bounded probe and never
waits. Why the rest:

- The embedded broker (Tansu) keeps everything in memory and comes back from a restart with no
  topics and no committed offsets. Clients must not re-create the topics by auto-creation (the
  broker's default is 4 partitions and no DLQs, see ``shared.kafka.without_topic_autocreation``):
  every round creates the platform's missing topics with the configured partitions (and the
  services' clients run ``without_topic_autocreation``).
- A consumer whose position (or committed offset) lies beyond a partition's new end would wait
  there and skip everything produced before it gets that far. Partitions of a topic that was
  reset (the broker's cluster id changed, or a partition's end offset went backwards) are sought
  to their beginning when next assigned, and any partition whose position lies past the end the
  broker reports on fetches is sought to its beginning too. Handlers are idempotent on
  ``event_id``, so reading a partition again costs time, never correctness.
- Whoever holds state others project (planning) learns of the reset through ``on_reset`` and
  republishes it.
- Lag is the group's committed offsets against the partitions' end offsets, read every round,
  so a stuck handler shows as lag without progress (``consumer_progress`` in ``/ready`` and
  ``mrm_consumer_stalled_partitions``) instead of a gauge that stopped moving.

Production runs on Apache Kafka, which keeps topics and offsets across restarts: there the
cluster id and end offsets never go backwards, so none of the reset handling fires.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from shared.kafka import without_topic_autocreation
from shared.kafka_config import PLAINTEXT, KafkaOptions
from shared.metrics import ServiceMetrics
from shared.topics import DLQ_SUFFIX, all_topics_with_dlq

log = structlog.get_logger(__name__)

ResetHook = Callable[[str], Awaitable[None]]
"""Called with the name of a topic the broker lost (or that was re-created)."""

_FAILURES = (KafkaError, TimeoutError, OSError)


class Subscription(ConsumerRebalanceListener):  # type: ignore[misc]
    """One subscriber of a consumer group: its topics, its live aiokafka consumer, and the
    partitions to read again from their beginning (used as the subscriber's rebalance listener,
    so a partition assigned after a reset starts at its beginning, not at a stale offset)."""

    def __init__(self, topics: Iterable[str]) -> None:
        self.topics = tuple(topics)
        self.subscriber: Any = None
        self._rewind: dict[TopicPartition, float] = {}  # partition → until when (monotonic)
        self._rewound: set[TopicPartition] = set()  # rewound in the current assignment

    def bind(self, subscriber: object) -> None:
        """Attach the FastStream subscriber whose consumer this subscription watches."""
        self.subscriber = subscriber

    @property
    def consumer(self) -> AIOKafkaConsumer | None:
        """The subscriber's aiokafka consumer while it runs."""
        return getattr(self.subscriber, "consumer", None)

    def rewind(self, partitions: Iterable[TopicPartition], *, for_s: float) -> None:
        """Read ``partitions`` from their beginning when (or while) assigned in the next
        ``for_s`` seconds: stale offsets may still be committed shortly after a reset."""
        until = time.monotonic() + for_s
        for tp in partitions:
            if tp.topic in self.topics:
                self._rewind[tp] = until
                self._rewound.discard(tp)

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Nothing to do before a rebalance (offsets are committed by the consumer kit)."""

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """A new assignment: rewind its partitions that were reset lately (positions are not
        known yet here: the watch's next round checks them against the ends)."""
        self._rewound.clear()
        await self.apply(assigned, check_ends=False)

    async def apply(
        self, assigned: Iterable[TopicPartition] | None = None, *, check_ends: bool = True
    ) -> list[TopicPartition]:
        """Seek assigned partitions to their beginning where a reset asks for it or (with
        ``check_ends``) where the position lies past the partition's end; returns them."""
        consumer = self.consumer
        if consumer is None:
            return []
        now = time.monotonic()
        self._rewind = {tp: until for tp, until in self._rewind.items() if until > now}
        sought = []
        for tp in assigned if assigned is not None else consumer.assignment():
            if tp in self._rewind and tp not in self._rewound:
                reason = "topic_reset"
            elif check_ends and await _beyond_end(consumer, tp):
                reason = "position_beyond_end"
            else:
                continue
            with contextlib.suppress(*_FAILURES):  # not assigned any more: its next owner seeks
                await consumer.seek_to_beginning(tp)
                self._rewound.add(tp)
                sought.append(tp)
                log.warning(
                    "consumer_rewound", topic=tp.topic, partition=tp.partition, reason=reason
                )
        return sought


async def _beyond_end(consumer: AIOKafkaConsumer, tp: TopicPartition) -> bool:
    """Whether the consumer's position lies past the end of the log the broker reported on its
    last fetch (Kafka answers such a fetch with OFFSET_OUT_OF_RANGE; Tansu answers empty)."""
    end = consumer.highwater(tp)
    if end is None:
        return False
    try:
        position = await asyncio.wait_for(consumer.position(tp), timeout=0.2)
    except (*_FAILURES, AssertionError):
        return False
    return position > end


@dataclass
class _Progress:
    committed: int
    since: float


class BrokerWatch:
    """Probes the broker, keeps the platform's topics, rewinds reset partitions and measures
    the consumer group's progress, every ``interval_s``; ``/ready`` reads its results."""

    def __init__(
        self,
        *,
        bootstrap: str,
        metrics: ServiceMetrics,
        partitions: int,
        group_id: str | None = None,
        subscriptions: Sequence[Subscription] = (),
        produced: Sequence[str] = (),
        on_reset: ResetHook | None = None,
        stall_after_s: float = 60.0,
        interval_s: float = 0.5,
        timeout_s: float = 1.0,
        rewind_window_s: float = 60.0,
        topics: Sequence[str] | None = None,
        single_partition: Sequence[str] = (),
        kafka: KafkaOptions = PLAINTEXT,
    ) -> None:
        self.bootstrap = bootstrap
        self.kafka = kafka.with_partitions(partitions)
        self.metrics = metrics
        self.partitions = partitions
        self.group_id = group_id
        self.subscriptions = list(subscriptions)
        self.consumed = sorted({topic for sub in self.subscriptions for topic in sub.topics})
        self.watched = sorted({*self.consumed, *produced})
        self.on_reset = on_reset
        self.stall_after_s = stall_after_s
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.rewind_window_s = rewind_window_s
        self.topics = list(topics) if topics is not None else all_topics_with_dlq()
        # topics of one partition besides the DLQs (e.g. an election topic)
        self.single_partition = frozenset(single_partition)
        self.topics += [topic for topic in single_partition if topic not in self.topics]
        self._admin: AIOKafkaAdminClient | None = None
        self._reader: AIOKafkaConsumer | None = None
        self._ok = False
        self._last_ok = 0.0
        self._probe_started: float | None = None
        self._cluster_id: str | None = None
        self._ends: dict[TopicPartition, int] = {}
        self._progress: dict[TopicPartition, _Progress] = {}
        self._stalled: set[TopicPartition] = set()
        self._hooks: set[asyncio.Task[None]] = set()

    # --- what /ready reads ---------------------------------------------------------------

    def kafka_ready(self) -> bool:
        """The last probe reached the broker and no probe has been waiting longer than its
        timeout (read without I/O: ``/ready`` never waits on the broker)."""
        now = time.monotonic()
        started = self._probe_started
        if started is not None and now - started > self.timeout_s:
            return False
        # the age bound only matters if rounds stopped coming (each of their steps is bounded)
        return self._ok and now - self._last_ok < 10.0

    def progress_ready(self) -> bool:
        """No partition has had lag without progress for ``stall_after_s``."""
        return not self._stalled

    def stalled(self) -> set[TopicPartition]:
        """The partitions with lag and no progress for ``stall_after_s``."""
        return set(self._stalled)

    # --- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Watch until cancelled."""
        try:
            with without_topic_autocreation():
                await self._watch()
        finally:
            for task in self._hooks:
                task.cancel()
            await self._disconnect()

    async def _watch(self) -> None:
        while True:
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a bad round must not end the watch
                log.error("broker_watch_round_failed", error=repr(exc))
                self._ok = False
                await self._disconnect()
            await asyncio.sleep(self.interval_s)

    async def round(self) -> None:
        """One look at the broker: probe, topics, resets, rewinds, lag."""
        self._probe_started = time.monotonic()
        try:
            cluster_id = await self._probe()
        except _FAILURES as exc:
            if self._ok:
                log.warning("broker_unreachable", error=repr(exc))
            self._ok = False
            await self._disconnect()
            return
        finally:
            self._probe_started = None
        if not self._ok:
            log.info("broker_reachable", cluster_id=cluster_id)
        self._ok, self._last_ok = True, time.monotonic()
        replaced = self._cluster_id is not None and cluster_id != self._cluster_id
        self._cluster_id = cluster_id
        try:
            await self._ensure_topics()
            ends = await self._end_offsets()
            self._detect_resets(ends, everything=replaced)
            for subscription in self.subscriptions:
                await subscription.apply()
            if self.group_id is not None and self.consumed:
                committed = await self._committed([tp for tp in ends if tp.topic in self.consumed])
                self._observe_progress(ends, committed)
        except _FAILURES as exc:  # the next round starts over with fresh clients
            log.info("broker_watch_round_incomplete", error=repr(exc))
            await self._disconnect()

    # --- steps ---------------------------------------------------------------------------

    async def _bounded(self, call: Awaitable[Any]) -> Any:
        return await asyncio.wait_for(call, timeout=self.timeout_s)

    async def _probe(self) -> str:
        if self._admin is None:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.bootstrap,
                client_id="mrm-watch",
                request_timeout_ms=int(self.timeout_s * 1000),
                **self.kafka.security.aiokafka(),
            )
            try:
                await self._bounded(admin.start())
            except BaseException:
                await _quietly(admin.close())
                raise
            self._admin = admin
        cluster = await self._bounded(self._admin.describe_cluster())
        return str(cluster.get("cluster_id") or "")

    async def _ensure_topics(self) -> None:
        assert self._admin is not None
        existing = set(await self._bounded(self._admin.list_topics()))
        missing = [topic for topic in self.topics if topic not in existing]
        if not missing:
            return
        specs = [
            self.kafka.topics.spec(topic, single_partition=self._single(topic)) for topic in missing
        ]
        new = [
            NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=dict(s.configs))
            for s in specs
        ]
        response = await self._bounded(self._admin.create_topics(new))
        created = [name for name, code, *_ in response.topic_errors if code == 0]
        if created:
            log.warning("topics_recreated", topics=created, partitions=self.partitions)

    def _single(self, topic: str) -> bool:
        return topic.endswith(DLQ_SUFFIX) or topic in self.single_partition

    async def _end_offsets(self) -> dict[TopicPartition, int]:
        if not self.watched:
            return {}
        assert self._admin is not None
        described = await self._bounded(self._admin.describe_topics(self.watched))
        partitions = [
            TopicPartition(topic["topic"], partition["partition"])
            for topic in described
            if not topic["error_code"]
            for partition in topic["partitions"]
        ]
        if self._reader is None:
            reader = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                client_id="mrm-watch",
                request_timeout_ms=int(self.timeout_s * 1000) + 1000,
                **self.kafka.security.aiokafka(),
            )
            try:
                await self._bounded(reader.start())
            except BaseException:
                await _quietly(reader.stop())
                raise
            self._reader = reader
        ends = await self._bounded(self._reader.end_offsets(partitions))
        return {tp: int(offset) for tp, offset in ends.items()}

    def _detect_resets(self, ends: dict[TopicPartition, int], *, everything: bool) -> None:
        reset = set(self.watched) if everything else set()
        reset.update(tp.topic for tp, end in ends.items() if end < self._ends.get(tp, 0))
        self._ends = ends
        if not reset:
            return
        log.warning("topics_reset", topics=sorted(reset), broker_replaced=everything)
        partitions = [tp for tp in ends if tp.topic in reset]
        for subscription in self.subscriptions:
            subscription.rewind(partitions, for_s=self.rewind_window_s)
        self._progress = {tp: p for tp, p in self._progress.items() if tp.topic not in reset}
        if self.on_reset is not None:
            for topic in sorted(reset):
                task = asyncio.create_task(self._run_hook(topic))
                self._hooks.add(task)
                task.add_done_callback(self._hooks.discard)

    async def _run_hook(self, topic: str) -> None:
        assert self.on_reset is not None
        try:
            await self.on_reset(topic)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed hook is reported, the watch goes on
            log.error("topic_reset_hook_failed", topic=topic, error=repr(exc))

    async def _committed(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        assert self._admin is not None and self.group_id is not None
        # named partitions: Tansu answers a request for "all of the group's offsets" with a
        # response aiokafka cannot decode
        offsets = await self._bounded(
            self._admin.list_consumer_group_offsets(self.group_id, partitions=partitions)
        )
        return {tp: int(meta.offset) for tp, meta in offsets.items() if meta.offset >= 0}

    def _observe_progress(
        self, ends: dict[TopicPartition, int], committed: dict[TopicPartition, int]
    ) -> None:
        now = time.monotonic()
        lag: Counter[str] = Counter()
        stalled: set[TopicPartition] = set()
        for tp, end in ends.items():
            if tp.topic not in self.consumed:
                continue
            done = committed.get(tp, 0)
            behind = max(0, end - done)
            lag[tp.topic] += behind
            progress = self._progress.get(tp)
            if progress is None or behind == 0 or progress.committed != done:
                self._progress[tp] = progress = _Progress(committed=done, since=now)
            if behind and now - progress.since >= self.stall_after_s:
                stalled.add(tp)
        for tp in stalled - self._stalled:
            log.warning(
                "consumer_stalled",
                topic=tp.topic,
                partition=tp.partition,
                lag=ends[tp] - committed.get(tp, 0),
                for_s=round(now - self._progress[tp].since, 1),
            )
        for tp in self._stalled - stalled:
            log.info("consumer_progressing", topic=tp.topic, partition=tp.partition)
        self._stalled = stalled
        per_topic = Counter(tp.topic for tp in stalled)
        for topic in self.consumed:
            self.metrics.consumer_lag.labels(topic=topic).set(lag[topic])
            self.metrics.stalled_partitions.labels(service=self.metrics.service, topic=topic).set(
                per_topic[topic]
            )

    async def _disconnect(self) -> None:
        admin, reader = self._admin, self._reader
        self._admin = self._reader = None
        if admin is not None:
            await _quietly(admin.close())
        if reader is not None:
            await _quietly(reader.stop())


async def _quietly(call: Awaitable[Any], timeout_s: float = 2.0) -> None:
    """Close a client without letting a dead broker hold us up."""
    with contextlib.suppress(*_FAILURES):
        await asyncio.wait_for(call, timeout=timeout_s)
