"""Execution's handlers, scheduler and API on a SQLite file, without a broker (relay faked)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select

from services.execution import store
from services.execution.api import ApiDeps
from services.execution.app import create_app
from services.execution.handlers import ExecutionHandlers
from services.execution.scheduler import Scheduler
from services.execution.settings import ExecutionSettings
from shared.consumer import Consumed, Rejected
from shared.events import EventData, new_envelope
from shared.events.ingest import SpendRecorded, TaskStatusChanged
from shared.events.planning import (
    BudgetAllocated,
    BudgetReallocated,
    CampaignPlanned,
    CampaignUpdated,
    StageScheduled,
)
from shared.money import FxRates
from shared.sql import make_engine

FX = FxRates(base="USD", rates={"EUR": Decimal("1.10")})


class FakeRelay:
    """Counts wake-ups instead of publishing."""

    def __init__(self) -> None:
        self.wakes = 0

    def wake(self) -> None:
        self.wakes += 1


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'execution.db'}")
    store.create_schema(engine=engine)
    yield engine
    engine.dispose()


@pytest.fixture
def handlers(engine: Engine, fake_clock) -> ExecutionHandlers:  # type: ignore[no-untyped-def]
    return ExecutionHandlers(engine=engine, relay=FakeRelay(), clock=fake_clock, fx=FX)  # type: ignore[arg-type]


def consumed(
    data: EventData, *, event_id: uuid.UUID | None = None, at: dt.datetime | None = None
) -> Consumed:
    envelope = new_envelope(data, source="test", event_id=event_id, occurred_at=at)
    return Consumed(envelope=envelope, data=data, topic=data.topic, partition=0, offset=0)


def outbox(engine: Engine) -> list[dict]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(store.MESSAGING.outbox.c.payload).order_by(store.MESSAGING.outbox.c.id)
        ).all()
    return [row[0] for row in rows]


def planned(campaign_id: str, *, budget: str = "1000", version: int = 1, **extra: object):  # type: ignore[no-untyped-def]
    values: dict[str, object] = {
        "campaign_id": campaign_id,
        "plan_id": "p-1",
        "name": "Spring",
        "channel": "search",
        "owner": "ann",
        "budget": Decimal(budget),
        "currency": "USD",
        "start_date": dt.date(2027, 3, 1),
        "end_date": dt.date(2027, 3, 31),
        "status": "active",
        "version": version,
    }
    values.update(extra)
    return values


def spend(campaign_id: str, amount: str, currency: str = "USD") -> SpendRecorded:
    return SpendRecorded(
        campaign_id=campaign_id, channel="search", amount=Decimal(amount), currency=currency
    )


def kinds(engine: Engine) -> list[tuple[str, object]]:
    return [
        (p["event_type"], p["data"].get("threshold_pct") or p["data"].get("stage_id"))
        for p in outbox(engine)
    ]


async def test_spend_before_the_campaign_counts_once_it_is_known(
    handlers: ExecutionHandlers, engine: Engine
) -> None:
    await handlers.on_spend_recorded(consumed(spend("c-1", "500")))
    await handlers.on_spend_recorded(consumed(spend("c-1", "100", "EUR")))  # 110 USD
    assert outbox(engine) == []
    # 610 of 1000 in 9.5 of 31 days → forecast 1990.74 > 1000
    await handlers.on_planning_event(consumed(CampaignPlanned(**planned("c-1"))))
    assert [k for k, _ in kinds(engine)] == ["budget.overspend_forecast"]
    await handlers.on_spend_recorded(consumed(spend("c-1", "200")))  # 810
    assert kinds(engine)[1:] == [("budget.threshold_crossed", 80)]
    assert outbox(engine)[1]["data"]["spend"] == "810.00"


async def test_a_redelivered_spend_counts_once(handlers: ExecutionHandlers, engine: Engine) -> None:
    await handlers.on_planning_event(consumed(CampaignPlanned(**planned("c-1"))))
    event = consumed(spend("c-1", "800"))
    await handlers.on_spend_recorded(event)
    await handlers.on_spend_recorded(event)
    crossed = [k for k in kinds(engine) if k[0] == "budget.threshold_crossed"]
    assert crossed == [("budget.threshold_crossed", 80)]
    await handlers.on_spend_recorded(consumed(spend("c-1", "200")))
    crossed = [k for k in kinds(engine) if k[0] == "budget.threshold_crossed"]
    assert crossed == [("budget.threshold_crossed", 80), ("budget.threshold_crossed", 100)]


async def test_spend_in_a_currency_without_a_rate_is_rejected(
    handlers: ExecutionHandlers, engine: Engine
) -> None:
    with pytest.raises(Rejected, match=r"^data\.currency: .*JPY"):
        await handlers.on_spend_recorded(consumed(spend("c-unknown", "1", "JPY")))
    await handlers.on_planning_event(consumed(CampaignPlanned(**planned("c-1"))))
    with pytest.raises(Rejected, match=r"^data\.currency: .*JPY"):
        await handlers.on_spend_recorded(consumed(spend("c-1", "1", "JPY")))
    with store.unit_of_work(engine=engine) as session:
        assert store.spend_by_currency(session=session, campaign_id="c-1") == {}
        assert store.spend_by_currency(session=session, campaign_id="c-unknown") == {}


async def test_older_campaign_versions_are_ignored(
    handlers: ExecutionHandlers, engine: Engine
) -> None:
    await handlers.on_planning_event(
        consumed(CampaignUpdated(**planned("c-1", version=2, name="Newer")))
    )
    await handlers.on_planning_event(consumed(CampaignPlanned(**planned("c-1", name="Older"))))
    with store.unit_of_work(engine=engine) as session:
        campaign = store.get_campaign(session=session, campaign_id="c-1")
        assert campaign is not None and (campaign.name, campaign.version) == ("Newer", 2)


async def test_budget_changes_reevaluate_and_a_raise_rearms(
    handlers: ExecutionHandlers, engine: Engine, fake_clock
) -> None:  # type: ignore[no-untyped-def]
    t0 = fake_clock.now()
    await handlers.on_planning_event(consumed(CampaignPlanned(**planned("c-1")), at=t0))
    await handlers.on_planning_event(consumed(CampaignPlanned(**planned("c-2")), at=t0))
    await handlers.on_spend_recorded(consumed(spend("c-1", "850")))
    reallocated = BudgetReallocated(
        reallocation_id="r-1",
        plan_id="p-1",
        from_campaign_id="c-2",
        to_campaign_id="c-1",
        amount=Decimal("500"),
        currency="USD",
        from_budget=Decimal("500"),
        to_budget=Decimal("1500"),
        requested_by="cmo",
    )
    await handlers.on_planning_event(consumed(reallocated, at=t0 + dt.timedelta(seconds=1)))
    # a late allocation produced before the reallocation changes nothing
    late = BudgetAllocated(campaign_id="c-1", plan_id="p-1", amount=Decimal("900"), currency="USD")
    await handlers.on_planning_event(consumed(late, at=t0))
    with store.unit_of_work(engine=engine) as session:
        c1 = store.get_campaign(session=session, campaign_id="c-1")
        c2 = store.get_campaign(session=session, campaign_id="c-2")
        assert c1 is not None and c1.budget == Decimal("1500.00")
        assert c2 is not None and c2.budget == Decimal("500.00")
        assert store.crossings(session=session, campaign_id="c-1")[0] == frozenset()
    await handlers.on_spend_recorded(consumed(spend("c-1", "400")))  # 1250 of 1500
    crossed = [p for p in outbox(engine) if p["event_type"] == "budget.threshold_crossed"]
    assert [(p["data"]["threshold_pct"], p["data"]["budget"]) for p in crossed] == [
        (80, "1000.00"),
        (80, "1500.00"),
    ]
    assert crossed[0]["event_id"] != crossed[1]["event_id"]


def scheduled(stage_id: str, deadline: dt.datetime, *, version: int = 1) -> StageScheduled:
    return StageScheduled(
        stage_id=stage_id,
        campaign_id="c-1",
        name="Launch",
        deadline=deadline,
        assignee="ann",
        version=version,
    )


async def test_task_done_completes_once_even_before_it_is_scheduled(
    handlers: ExecutionHandlers, engine: Engine, fake_clock
) -> None:  # type: ignore[no-untyped-def]
    done = TaskStatusChanged(campaign_id="c-1", stage_id="s-1", status="done", assignee="ann")
    await handlers.on_task_status_changed(consumed(done))
    assert outbox(engine) == []
    deadline = fake_clock.now() + dt.timedelta(days=5)
    await handlers.on_planning_event(consumed(scheduled("s-1", deadline)))
    await handlers.on_planning_event(consumed(scheduled("s-1", deadline, version=2)))
    await handlers.on_task_status_changed(consumed(done))
    assert kinds(engine) == [("stage.completed", "s-1")]


async def test_scheduler_reminds_then_flags_overdue_once(
    handlers: ExecutionHandlers, engine: Engine, fake_clock
) -> None:  # type: ignore[no-untyped-def]
    deadline = fake_clock.now() + dt.timedelta(hours=50)
    await handlers.on_planning_event(consumed(scheduled("s-1", deadline)))
    scheduler = Scheduler(
        engine=engine,
        relay=FakeRelay(),  # type: ignore[arg-type]
        clock=fake_clock,
        fx=FX,
        warning_window=dt.timedelta(hours=48),
    )
    assert scheduler.tick_sync() == 0
    fake_clock.advance(dt.timedelta(hours=3))
    assert scheduler.tick_sync() == 1
    assert scheduler.tick_sync() == 0
    fake_clock.advance(dt.timedelta(hours=48))
    assert scheduler.tick_sync() == 1
    fake_clock.advance(dt.timedelta(hours=48))
    assert scheduler.tick_sync() == 0
    assert kinds(engine) == [("stage.deadline_approaching", "s-1"), ("stage.overdue", "s-1")]


# --- HTTP -----------------------------------------------------------------------------------

TOKENS = {
    "t-admin": {"subject": "root", "role": "admin"},
    "t-ann": {"subject": "ann", "role": "executor"},
    "t-bob": {"subject": "bob", "role": "executor"},
    "t-viewer": {"subject": "vic", "role": "viewer"},
}


@pytest.fixture
async def client(engine: Engine, handlers: ExecutionHandlers, fake_clock, tmp_path: Path):  # type: ignore[no-untyped-def]
    settings = ExecutionSettings(kafka_bootstrap="unused:9092", data_dir=tmp_path, tokens=TOKENS)
    app = create_app(settings, clock=fake_clock)
    app.state.execution = ApiDeps(engine=engine, relay=FakeRelay(), clock=fake_clock, fx=FX)  # type: ignore[arg-type]
    await handlers.on_planning_event(consumed(CampaignPlanned(**planned("c-1"))))
    await handlers.on_planning_event(
        consumed(scheduled("s-1", fake_clock.now() - dt.timedelta(hours=1)))
    )
    await handlers.on_spend_recorded(consumed(spend("c-1", "250")))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_an_executor_changes_only_its_own_stages(client: httpx.AsyncClient) -> None:
    body = {"status": "in_progress", "comment": "started"}
    response = await client.post("/api/v1/stages/s-1/status", json=body, headers=auth("t-bob"))
    assert response.status_code == 403
    assert response.json()["detail"][0]["loc"] == ["path", "stage_id"]
    viewer = await client.post("/api/v1/stages/s-1/status", json=body, headers=auth("t-viewer"))
    assert viewer.status_code == 403
    own = await client.post("/api/v1/stages/s-1/status", json=body, headers=auth("t-ann"))
    assert own.status_code == 200, own.text
    assert own.json()["status"] == "in_progress"
    assert own.json()["status_by"] == "ann"
    assert own.json()["overdue"] is True
    admin = await client.post(
        "/api/v1/stages/s-1/status", json={"status": "done"}, headers=auth("t-admin")
    )
    assert admin.json()["status"] == "done" and admin.json()["overdue"] is False


async def test_bad_requests_name_the_field(client: httpx.AsyncClient) -> None:
    bad = await client.post(
        "/api/v1/stages/s-1/status", json={"status": "finished"}, headers=auth("t-admin")
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "status"
    missing = await client.post(
        "/api/v1/stages/nope/status", json={"status": "done"}, headers=auth("t-admin")
    )
    assert missing.status_code == 404 and "nope" in missing.json()["detail"][0]["msg"]
    unknown = await client.get("/api/v1/campaigns/c-x/progress", headers=auth("t-viewer"))
    assert unknown.status_code == 404 and "c-x" in unknown.json()["detail"][0]["msg"]
    anonymous = await client.get("/api/v1/campaigns/c-1/progress")
    assert anonymous.status_code == 401


async def test_progress_shows_spend_against_plan(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/campaigns/c-1/progress", headers=auth("t-viewer"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["budget"], body["spend"], body["currency"]) == ("1000.00", "250.00", "USD")
    assert body["utilisation"] == "0.2500"
    # 9.5 of 31 days elapsed at 2027-03-10 12:00
    assert body["forecast_at_completion"] == "815.79"
    assert body["burn_rate_per_day"] == "26.32"
    assert body["overspend_forecast"] is False
    assert body["thresholds_crossed"] == []
    assert [(s["stage_id"], s["overdue"]) for s in body["stages"]] == [("s-1", True)]
    listed = await client.get("/api/v1/campaigns?plan_id=p-1", headers=auth("t-viewer"))
    assert [c["campaign_id"] for c in listed.json()] == ["c-1"]
    assert "stages" not in listed.json()[0]


def test_settings_defaults_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MRM_DATA_DIR", str(tmp_path))
    settings = ExecutionSettings()
    assert settings.port == 8002
    assert settings.database_url == f"sqlite:///{tmp_path / 'execution.db'}"
    assert (settings.scheduler_interval_s, settings.deadline_warning_hours) == (30.0, 48.0)
    monkeypatch.setenv("MRM_EXECUTION_PORT", "9100")
    monkeypatch.setenv("MRM_EXECUTION_DATABASE_URL", "sqlite:///x.db")
    monkeypatch.setenv("MRM_EXECUTION_SCHEDULER_INTERVAL_S", "5")
    monkeypatch.setenv("MRM_EXECUTION_DEADLINE_WARNING_HOURS", "24")
    settings = ExecutionSettings()
    assert (settings.port, settings.database_url) == (9100, "sqlite:///x.db")
    assert (settings.scheduler_interval_s, settings.deadline_warning_hours) == (5.0, 24.0)
