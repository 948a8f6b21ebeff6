"""Freshness: spend published at a steady rate; probes timed from publish to visible in the KPI
API.

Every ``probe_every``-th event is a probe: one unit of spend on one of a few planned probe
campaigns (published in order, keyed by campaign, so one partition each). Probe ``n`` of a
campaign is visible once the campaign's ``spend`` KPI reaches ``n``; one poller per campaign
resolves every probe its response covers. The other events go to background campaigns.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

import httpx
from aiokafka import AIOKafkaProducer

from mrm.bench.data import spend_template, with_event_id
from mrm.bench.kafka import BenchTimeout
from mrm.bench.service import TOKEN
from shared.events import new_envelope
from shared.events.planning import CampaignPlanned
from shared.topics import PLANNING, SPEND

PROBE_AMOUNT = Decimal("1.00")


@dataclass
class Freshness:
    """Publish → visible latencies of the probes, and how the run went."""

    latencies_s: list[float] = field(default_factory=list)
    probes: int = 0
    events: int = 0
    publish_seconds: float = 0.0
    polls: int = 0
    poll_seconds: list[float] = field(default_factory=list)

    @property
    def unresolved(self) -> int:
        """Probes never seen in the KPI API."""
        return self.probes - len(self.latencies_s)

    @property
    def rate(self) -> float:
        """Achieved publish rate, events per second."""
        return self.events / self.publish_seconds if self.publish_seconds else 0.0


async def _plan_probe_campaigns(
    producer: AIOKafkaProducer, http: httpx.AsyncClient, campaign_ids: list[str], run: str
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    for campaign_id in campaign_ids:
        data = CampaignPlanned(
            campaign_id=campaign_id,
            plan_id=f"bench-{run}-fresh",
            name=f"Freshness probe {campaign_id}",
            channel="display",
            owner="bench",
            budget=Decimal("1000000"),
            currency="USD",
            start_date=today,
            end_date=today + dt.timedelta(days=30),
        )
        envelope = new_envelope(data, source="planning")
        await producer.send_and_wait(PLANNING, envelope.to_bytes(), key=campaign_id.encode())
    deadline = time.monotonic() + 120
    for campaign_id in campaign_ids:
        while (await http.get(f"/api/v1/kpis/campaigns/{campaign_id}")).status_code != 200:
            if time.monotonic() > deadline:
                raise BenchTimeout(f"probe campaign {campaign_id} never became visible")
            await asyncio.sleep(0.2)


async def measure_freshness(
    *,
    bootstrap: str,
    url: str,
    run: str,
    rate: float,
    seconds: float,
    probe_every: int = 100,
    probe_campaigns: int = 4,
    background_campaigns: int = 20,
    poll_interval_s: float = 0.1,
    settle_timeout_s: float = 60.0,
) -> Freshness:
    """Publish spend at ``rate``/s for ``seconds``; time the probes until visible."""
    probes = [f"bench-{run}-probe{k}" for k in range(probe_campaigns)]
    background = [f"bench-{run}-bg{k:02d}" for k in range(background_campaigns)]
    probe_bytes = {c: spend_template(campaign_id=c, amount=PROBE_AMOUNT) for c in probes}
    bg_bytes = {c: spend_template(campaign_id=c, amount=Decimal("2.50")) for c in background}
    result = Freshness()
    pending: dict[str, deque[tuple[int, float]]] = {c: deque() for c in probes}
    sent_per_probe = dict.fromkeys(probes, 0)
    done = asyncio.Event()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
        try:
            await _plan_probe_campaigns(producer, http, probes, run)

            async def poll(campaign_id: str) -> None:
                queue = pending[campaign_id]
                while not (done.is_set() and not queue):
                    if not queue:
                        await asyncio.sleep(poll_interval_s / 2)
                        continue
                    asked = time.perf_counter()
                    response = await http.get(f"/api/v1/kpis/campaigns/{campaign_id}")
                    answered = time.perf_counter()
                    result.polls += 1
                    result.poll_seconds.append(answered - asked)
                    visible = Decimal(response.json()["spend"] or 0) / PROBE_AMOUNT
                    while queue and queue[0][0] <= visible:
                        result.latencies_s.append(answered - queue.popleft()[1])
                    await asyncio.sleep(poll_interval_s)

            pollers = [asyncio.create_task(poll(c)) for c in probes]
            total = int(rate * seconds)
            started = time.perf_counter()
            n = 0
            while n < total:
                due = min(total, int((time.perf_counter() - started) * rate) + 1)
                while n < due:
                    if n % probe_every == 0:
                        campaign_id = probes[(n // probe_every) % len(probes)]
                        value = with_event_id(probe_bytes[campaign_id], str(uuid.uuid4()))
                        sent_per_probe[campaign_id] += 1
                        pending[campaign_id].append(
                            (sent_per_probe[campaign_id], time.perf_counter())
                        )
                        result.probes += 1
                    else:
                        campaign_id = background[n % len(background)]
                        value = with_event_id(bg_bytes[campaign_id], str(uuid.uuid4()))
                    await producer.send(SPEND, value, key=campaign_id.encode())
                    n += 1
                await asyncio.sleep(0.005)
            await producer.flush()
            result.events = n
            result.publish_seconds = time.perf_counter() - started
            done.set()
            try:
                await asyncio.wait_for(asyncio.gather(*pollers), timeout=settle_timeout_s)
            except TimeoutError:
                for task in pollers:
                    task.cancel()
        finally:
            await producer.stop()
    return result
