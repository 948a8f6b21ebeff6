"""The execution service end to end on the real broker (Tansu) and SQLite / PostgreSQL.

Planning, spend and task events are published with the platform's publisher; the service runs
its real lifespan (consumer group, outbox relay, scheduler); outgoing events are asserted by
reading ``mrm.execution.v1`` and the spend DLQ.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from kafka import KafkaConsumer

from services.execution.app import create_app
from services.execution.settings import ExecutionSettings
from shared import topics
from shared.events.ingest import SpendRecorded, TaskStatusChanged
from shared.events.planning import CampaignPlanned, PlanCreated, StageScheduled
from shared.kafka import ERROR_HEADER, ORIGINAL_TOPIC_HEADER
from shared.publisher import EventPublisher

pytestmark = pytest.mark.integration

TOKENS = {
    "t-viewer": {"subject": "vic", "role": "viewer"},
    "t-ann": {"subject": "ann", "role": "executor"},
    "t-bob": {"subject": "bob", "role": "executor"},
}


def _read(bootstrap: str, topic: str, key: str, timeout_s: float) -> list:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=int(timeout_s * 1000),
    )
    try:
        return [record for record in consumer if record.key == key.encode()]
    finally:
        consumer.close()


async def read_until(
    bootstrap: str,
    topic: str,
    *,
    key: str,
    done: Callable[[list], bool],
    timeout_s: float = 60.0,
) -> list:
    """The records of ``topic`` with ``key``, re-read until ``done(records)`` or the timeout."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        records = await asyncio.to_thread(_read, bootstrap, topic, key, 2.0)
        if done(records) or asyncio.get_running_loop().time() > deadline:
            return records


def payloads(records: list, event_type: str) -> list[dict]:
    documents = [json.loads(record.value) for record in records]
    return [document["data"] for document in documents if document["event_type"] == event_type]


async def wait_for(probe: Callable[[], object], timeout_s: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await probe():  # type: ignore[misc]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.2)


@pytest.fixture
async def service(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The running service (real lifespan) and an HTTP client to it."""
    settings = ExecutionSettings(
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url,
        data_dir=tmp_path,
        tokens=TOKENS,
        fx_rates={"EUR": Decimal("1.10")},
        scheduler_interval_s=0.5,
        deadline_warning_hours=48,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://execution") as client:
            yield client


def campaign_planned(campaign_id: str, plan_id: str) -> CampaignPlanned:
    today = dt.datetime.now(dt.UTC).date()
    return CampaignPlanned(
        campaign_id=campaign_id,
        plan_id=plan_id,
        name="Spring launch",
        channel="search",
        owner="ann",
        budget=Decimal("1000"),
        currency="USD",
        start_date=today - dt.timedelta(days=10),
        end_date=today + dt.timedelta(days=20),
        status="active",
    )


def spend(campaign_id: str, amount: str, currency: str = "USD") -> SpendRecorded:
    return SpendRecorded(
        campaign_id=campaign_id, channel="search", amount=Decimal(amount), currency=currency
    )


async def test_thresholds_once_each_dlq_for_unknown_currency_and_progress(
    service: httpx.AsyncClient, kafka_bootstrap: str, unique_id: str
) -> None:
    campaign, plan = f"c-{unique_id}", f"p-{unique_id}"
    today = dt.datetime.now(dt.UTC).date()
    with EventPublisher(kafka_bootstrap, source="test") as publisher:
        publisher.publish(
            PlanCreated(
                plan_id=plan,
                name="FY",
                period_start=today.replace(month=1, day=1),
                period_end=today.replace(month=12, day=31),
                currency="USD",
                owner="cmo",
            )
        )
        publisher.publish(campaign_planned(campaign, plan))

    headers = {"Authorization": "Bearer t-viewer"}

    async def campaign_is_known() -> bool:
        response = await service.get(f"/api/v1/campaigns/{campaign}/progress", headers=headers)
        return response.status_code == 200

    # spend arriving first is kept and counted too, but then both thresholds are crossed at
    # once; waiting makes the 80 % crossing observable on its own
    await wait_for(campaign_is_known)
    with EventPublisher(kafka_bootstrap, source="test") as publisher:
        publisher.publish(spend(campaign, "500"))
        crossing = publisher.publish(spend(campaign, "300"))  # 800 of 1000: 80 %
        publisher.send_envelope(crossing, topic=topics.SPEND, key=campaign)  # re-delivered
        publisher.publish(spend(campaign, "1", "JPY"))  # no rate → DLQ
        publisher.publish(spend(campaign, "100", "EUR"))  # 110 USD → 910
        publisher.publish(spend(campaign, "90"))  # 1000 of 1000: 100 %
        publisher.send_envelope(crossing, topic=topics.SPEND, key=campaign)  # again, late

    async def spend_is_complete() -> bool:
        response = await service.get(f"/api/v1/campaigns/{campaign}/progress", headers=headers)
        return response.status_code == 200 and response.json()["spend"] == "1000.00"

    await wait_for(spend_is_complete)

    def both_crossed(records: list) -> bool:
        return len(payloads(records, "budget.threshold_crossed")) >= 2

    await read_until(kafka_bootstrap, topics.EXECUTION, key=campaign, done=both_crossed)
    await asyncio.sleep(2)  # room for a duplicate to show up, were there one
    records = await read_until(kafka_bootstrap, topics.EXECUTION, key=campaign, done=both_crossed)
    crossed = payloads(records, "budget.threshold_crossed")
    assert [(c["threshold_pct"], c["currency"]) for c in crossed] == [(80, "USD"), (100, "USD")]
    assert [c["spend"] for c in crossed] == ["800.00", "1000.00"]
    assert len({json.loads(r.value)["event_id"] for r in records}) == len(records)
    # 10 days and some hours of 31 elapsed: the forecast is far above the budget, once
    overspend = payloads(records, "budget.overspend_forecast")
    assert len(overspend) == 1 and Decimal(overspend[0]["forecast_at_completion"]) > 1000

    dead = await read_until(
        kafka_bootstrap, topics.dlq(topics.SPEND), key=campaign, done=lambda found: bool(found)
    )
    assert len(dead) == 1
    reason = dict(dead[0].headers)[ERROR_HEADER].decode()
    assert reason.startswith("data.currency:") and "JPY" in reason
    assert dict(dead[0].headers)[ORIGINAL_TOPIC_HEADER].decode() == topics.SPEND

    progress = (await service.get(f"/api/v1/campaigns/{campaign}/progress", headers=headers)).json()
    assert (progress["budget"], progress["spend"], progress["utilisation"]) == (
        "1000.00",
        "1000.00",
        "1.0000",
    )
    assert progress["thresholds_crossed"] == [80, 100]
    assert progress["overspend_forecast"] is True
    assert progress["unconverted_spend"] == {}


async def test_stage_reminders_completion_and_executor_status(
    service: httpx.AsyncClient, kafka_bootstrap: str, unique_id: str
) -> None:
    campaign, plan = f"c-{unique_id}", f"p-{unique_id}"
    now = dt.datetime.now(dt.UTC)
    soon, late, done = f"s-soon-{unique_id}", f"s-late-{unique_id}", f"s-done-{unique_id}"
    with EventPublisher(kafka_bootstrap, source="test") as publisher:
        publisher.publish(campaign_planned(campaign, plan))
        for stage_id, deadline in (
            (soon, now + dt.timedelta(hours=5)),
            (late, now - dt.timedelta(hours=5)),
            (done, now + dt.timedelta(days=9)),
        ):
            publisher.publish(
                StageScheduled(
                    stage_id=stage_id,
                    campaign_id=campaign,
                    name=f"Stage {stage_id}",
                    deadline=deadline,
                    assignee="ann",
                )
            )
        publisher.publish(
            TaskStatusChanged(campaign_id=campaign, stage_id=done, status="done", assignee="ann")
        )

    def all_announced(records: list) -> bool:
        return (
            len(payloads(records, "stage.deadline_approaching")) >= 1
            and len(payloads(records, "stage.overdue")) >= 1
            and len(payloads(records, "stage.completed")) >= 1
        )

    await read_until(kafka_bootstrap, topics.EXECUTION, key=campaign, done=all_announced)
    await asyncio.sleep(2)  # a few more scheduler rounds: nothing may repeat
    records = await read_until(kafka_bootstrap, topics.EXECUTION, key=campaign, done=all_announced)
    assert [p["stage_id"] for p in payloads(records, "stage.deadline_approaching")] == [soon]
    assert [p["stage_id"] for p in payloads(records, "stage.overdue")] == [late]
    assert [p["stage_id"] for p in payloads(records, "stage.completed")] == [done]

    body = {"status": "in_progress", "comment": "on it"}
    bob = await service.post(
        f"/api/v1/stages/{late}/status", json=body, headers={"Authorization": "Bearer t-bob"}
    )
    assert bob.status_code == 403
    ann = await service.post(
        f"/api/v1/stages/{late}/status", json=body, headers={"Authorization": "Bearer t-ann"}
    )
    assert ann.status_code == 200 and ann.json()["status"] == "in_progress"
    progress = (
        await service.get(
            f"/api/v1/campaigns/{campaign}/progress", headers={"Authorization": "Bearer t-viewer"}
        )
    ).json()
    stages = {s["stage_id"]: (s["status"], s["overdue"]) for s in progress["stages"]}
    assert stages == {
        soon: ("planned", False),
        late: ("in_progress", True),
        done: ("done", False),
    }
