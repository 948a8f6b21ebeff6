"""Execution keeping up with spend: ``spend.recorded`` at a steady rate, read back until counted.

The execution service runs as a child process on a broker of its own (the measurement phases
leave ~100 k spend events on theirs, which would be a backlog here). A few campaigns are
planned, then spend is published at ``rate`` for ``seconds`` (every ``duplicate_every``-th
event a second time with the same event_id, as a redelivery would), and the campaigns' applied
spend is sampled through ``GET /api/v1/campaigns`` until all of it counts. Budgets are set so
that every campaign crosses 80 % and 100 % during the run; each crossing must be announced on
``mrm.execution.v1`` exactly once, and every campaign's spend must match to the cent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from mrm.bench.data import spend_template, with_event_id
from mrm.bench.kafka import BenchTimeout, publish_fast
from mrm.bench.service import ExecutionProcess
from shared.events import new_envelope
from shared.events.planning import CampaignPlanned
from shared.topics import EXECUTION, PLANNING, SPEND

AMOUNT = Decimal("1.00")
"""Every spend event's amount, so applied spend / AMOUNT = events applied."""
BUDGET_SHARE = Decimal("0.9")
"""Budget = this share of a campaign's spend in the run: 80 % and 100 % are crossed in it."""


@dataclass
class SpendRun:
    """How the service kept up with spend published at a steady rate."""

    offered_rate: float
    campaigns: int
    sample_every_s: float
    events: int = 0
    """Distinct spend events published (redeliveries not counted)."""
    duplicates: int = 0
    publish_seconds: float = 0.0
    samples: list[tuple[float, int]] = field(default_factory=list)
    """(seconds since the first publish, events applied) as sampled from the API."""
    caught_up_s: float | None = None
    """Seconds from the last publish until every event was applied; None if it never was."""
    backlog: int = 0
    """Spend events then published at once (a backlog to drain); 0 when not measured."""
    backlog_seconds: float | None = None
    """First backlog publish → every backlog event applied; None if they never all were."""
    spend_exact: bool = False
    threshold_events: dict[int, int] = field(default_factory=dict)
    """threshold % → distinct ``budget.threshold_crossed`` events of the run's campaigns."""

    @property
    def applied(self) -> int:
        """Events applied at the last sample."""
        return self.samples[-1][1] if self.samples else 0

    @property
    def rate(self) -> float:
        """Events applied per second, first publish → last event applied (or last sample)."""
        if not self.samples:
            return 0.0
        end = self.samples[-1][0]
        return self.applied / end if end > 0 else 0.0

    @property
    def backlog_rate(self) -> float:
        """Backlog events applied per second (the service's capacity), 0 when not measured."""
        return self.backlog / self.backlog_seconds if self.backlog_seconds else 0.0

    @property
    def behind_s(self) -> float:
        """How far behind the publisher the service ended: the catch-up time, or (never caught
        up) the waiting so far plus what was left at the measured rate."""
        if self.caught_up_s is not None:
            return self.caught_up_s
        waited = (self.samples[-1][0] if self.samples else 0.0) - self.publish_seconds
        left = self.events - self.applied
        return waited + (left / self.rate if self.rate else float("inf"))

    @property
    def verified(self) -> bool:
        """Every event counted once, to the cent, each threshold announced once per campaign."""
        return (
            self.caught_up_s is not None
            and (self.backlog == 0 or self.backlog_seconds is not None)
            and self.spend_exact
            and self.threshold_events == {80: self.campaigns, 100: self.campaigns}
        )


async def _plan(producer: AIOKafkaProducer, *, plan_id: str, budgets: dict[str, Decimal]) -> None:
    today = dt.datetime.now(dt.UTC).date()
    for campaign_id, budget in budgets.items():
        data = CampaignPlanned(
            campaign_id=campaign_id,
            plan_id=plan_id,
            name=f"Bench {campaign_id}",
            channel="display",
            owner="bench",
            budget=budget,
            currency="USD",
            start_date=today - dt.timedelta(days=10),
            end_date=today + dt.timedelta(days=20),
            status="active",
        )
        envelope = new_envelope(data, source="planning")
        await producer.send_and_wait(PLANNING, envelope.to_bytes(), key=campaign_id.encode())


def _applied(service: ExecutionProcess, plan_id: str) -> tuple[int, dict[str, Decimal]]:
    spend = {c["campaign_id"]: Decimal(c["spend"]) for c in service.campaigns(plan_id)}
    return int(sum(spend.values(), Decimal(0)) / AMOUNT), spend


async def _wait_planned(service: ExecutionProcess, plan_id: str, count: int) -> None:
    deadline = time.monotonic() + 120
    while len(await asyncio.to_thread(service.campaigns, plan_id)) < count:
        service.check_alive()
        if time.monotonic() > deadline:
            raise BenchTimeout(f"the {count} campaigns of {plan_id} never reached execution")
        await asyncio.sleep(0.2)


async def measure_execution(
    service: ExecutionProcess,
    *,
    run: str,
    rate: float,
    seconds: float,
    campaigns: int = 20,
    duplicate_every: int = 50,
    sample_every_s: float = 1.0,
    catch_up_timeout_s: float = 180.0,
    backlog: int = 0,
    partitions: int = 3,
) -> SpendRun:
    """Publish spend at ``rate``/s for ``seconds`` to ``campaigns`` campaigns and sample the
    service's applied spend until all of it counts (or ``catch_up_timeout_s`` after the last
    publish); if it caught up, publish ``backlog`` more at once and time their draining; then
    check the spend and the threshold events."""
    plan_id = f"bench-{run}-exec"
    ids = [f"bench-{run}-x{k:02d}" for k in range(campaigns)]
    total = int(rate * seconds)
    per_campaign = {
        c: total // campaigns + (1 if k < total % campaigns else 0) for k, c in enumerate(ids)
    }
    budgets = {c: (n * AMOUNT * BUDGET_SHARE).quantize(AMOUNT) for c, n in per_campaign.items()}
    templates = {c: spend_template(campaign_id=c, amount=AMOUNT) for c in ids}
    result = SpendRun(offered_rate=rate, campaigns=campaigns, sample_every_s=sample_every_s)
    producer = AIOKafkaProducer(bootstrap_servers=service.bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        await _plan(producer, plan_id=plan_id, budgets=budgets)
        await _wait_planned(service, plan_id, campaigns)
        started = time.perf_counter()
        done_publishing = asyncio.Event()

        async def sample() -> None:
            while True:
                service.check_alive()
                applied, _ = await asyncio.to_thread(_applied, service, plan_id)
                now = time.perf_counter() - started
                result.samples.append((now, applied))
                if done_publishing.is_set() and applied >= total:
                    result.caught_up_s = max(0.0, now - result.publish_seconds)
                    return
                if done_publishing.is_set() and now > result.publish_seconds + catch_up_timeout_s:
                    return
                await asyncio.sleep(sample_every_s)

        sampler = asyncio.create_task(sample())
        n = 0
        while n < total:
            due = min(total, int((time.perf_counter() - started) * rate) + 1)
            while n < due:
                k = n % campaigns
                key, partition = ids[k].encode(), k % partitions
                value = with_event_id(templates[ids[k]], str(uuid.uuid4()))
                await producer.send(SPEND, value, key=key, partition=partition)
                if duplicate_every and n % duplicate_every == duplicate_every - 1:
                    await producer.send(SPEND, value, key=key, partition=partition)
                    result.duplicates += 1
                n += 1
            await asyncio.sleep(0.005)
        await producer.flush()
        result.events = n
        result.publish_seconds = time.perf_counter() - started
        done_publishing.set()
        await sampler
    finally:
        await producer.stop()
    if backlog and result.caught_up_s is not None:
        result.backlog = backlog
        result.backlog_seconds = await _drain(
            service,
            plan_id=plan_id,
            ids=ids,
            templates=templates,
            count=backlog,
            applied_before=result.applied,
            partitions=partitions,
            timeout_s=catch_up_timeout_s,
        )
        for k in range(backlog):
            per_campaign[ids[k % campaigns]] += 1
    _, spend = await asyncio.to_thread(_applied, service, plan_id)
    result.spend_exact = spend == {c: n * AMOUNT for c, n in per_campaign.items()}
    if result.caught_up_s is not None:
        result.threshold_events = await _threshold_events(service.bootstrap, set(ids))
    return result


async def _drain(
    service: ExecutionProcess,
    *,
    plan_id: str,
    ids: list[str],
    templates: dict[str, bytes],
    count: int,
    applied_before: int,
    partitions: int,
    timeout_s: float,
) -> float | None:
    """Publish ``count`` spend events at once (each campaign on one partition, as keyed) and
    return the seconds until the service applied them all (None after ``timeout_s``)."""
    messages = (
        (
            SPEND,
            k % len(ids) % partitions,
            ids[k % len(ids)].encode(),
            with_event_id(templates[ids[k % len(ids)]], str(uuid.uuid4())),
        )
        for k in range(count)
    )
    started = time.perf_counter()
    await publish_fast(service.bootstrap, messages)
    deadline = time.monotonic() + timeout_s
    while True:
        service.check_alive()
        applied, _ = await asyncio.to_thread(_applied, service, plan_id)
        if applied >= applied_before + count:
            return time.perf_counter() - started
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.5)


async def _threshold_events(bootstrap: str, ids: set[str]) -> dict[int, int]:
    """Distinct ``budget.threshold_crossed`` of the campaigns per threshold on
    ``mrm.execution.v1``, read from the start until both thresholds of every campaign are seen
    and then 2 s pass without another record (any extra one would be counted), or 30 s."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="mrm-bench-execution-reader",
    )
    await consumer.start()
    seen: dict[int, set[str]] = {}
    try:
        await consumer.topics()
        partitions = [
            TopicPartition(EXECUTION, p) for p in consumer.partitions_for_topic(EXECUTION) or ()
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + 30
        last_record = time.monotonic()
        while time.monotonic() < deadline:
            complete = sum(len(found) for found in seen.values()) >= 2 * len(ids)
            if complete and time.monotonic() - last_record >= 2:
                break
            fetched = await consumer.getmany(timeout_ms=200)
            for record in (r for records in fetched.values() for r in records):
                last_record = time.monotonic()
                document = json.loads(record.value)
                data = document.get("data", {})
                if (
                    document.get("event_type") == "budget.threshold_crossed"
                    and data.get("campaign_id") in ids
                ):
                    pct = int(data["threshold_pct"])
                    seen.setdefault(pct, set()).add(document["event_id"])
    finally:
        await consumer.stop()
    return {pct: len(event_ids) for pct, event_ids in seen.items()}
