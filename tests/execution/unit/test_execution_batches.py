"""Execution's batch path: a consumed batch applied in one transaction, spend per campaign at once.

Run on SQLite and PostgreSQL (``database_url``). The reference for every batch is the same
events applied one at a time: events out, spend totals and recorded crossings must be equal.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select, text

from services.execution import store
from services.execution.handlers import ExecutionHandlers
from shared.consumer import Consumed, Rejected
from shared.events import EventData, new_envelope
from shared.events.ingest import SpendRecorded
from shared.events.planning import BudgetAllocated, CampaignPlanned
from shared.money import FxRates
from shared.sql import make_engine

FX = FxRates(base="USD", rates={"EUR": Decimal("1.10"), "GBP": Decimal("1.25")})


class FakeRelay:
    """Counts wake-ups instead of publishing."""

    def __init__(self) -> None:
        self.wakes = 0

    def wake(self) -> None:
        self.wakes += 1


def new_engine(url: str) -> Engine:
    engine = make_engine(url)
    store.create_schema(engine=engine)
    return engine


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = new_engine(database_url)
    yield engine
    engine.dispose()


def handlers_on(engine: Engine, clock) -> ExecutionHandlers:  # type: ignore[no-untyped-def]
    return ExecutionHandlers(engine=engine, relay=FakeRelay(), clock=clock, fx=FX)  # type: ignore[arg-type]


def consumed(data: EventData, *, event_id: uuid.UUID | None = None) -> Consumed:
    envelope = new_envelope(data, source="test", event_id=event_id)
    return Consumed(envelope=envelope, data=data, topic=data.topic, partition=0, offset=0)


def planned(campaign_id: str, *, budget: str = "1000") -> CampaignPlanned:
    return CampaignPlanned(
        campaign_id=campaign_id,
        plan_id="p-1",
        name="Spring",
        channel="search",
        owner="ann",
        budget=Decimal(budget),
        currency="USD",
        start_date=dt.date(2027, 3, 1),
        end_date=dt.date(2027, 3, 31),
        status="active",
    )


def spend(campaign_id: str, amount: str, currency: str = "USD") -> Consumed:
    data = SpendRecorded(
        campaign_id=campaign_id, channel="search", amount=Decimal(amount), currency=currency
    )
    return consumed(data)


def outbox(engine: Engine) -> list[dict]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(store.MESSAGING.outbox.c.payload).order_by(store.MESSAGING.outbox.c.id)
        ).all()
    return [row[0] for row in rows]


def crossed(engine: Engine) -> list[tuple[str, int, str]]:
    """(campaign, threshold, spend) of each budget.threshold_crossed in the outbox."""
    return [
        (p["data"]["campaign_id"], p["data"]["threshold_pct"], p["data"]["spend"])
        for p in outbox(engine)
        if p["event_type"] == "budget.threshold_crossed"
    ]


def totals(engine: Engine) -> dict[str, dict[str, Decimal]]:
    with store.unit_of_work(engine=engine) as session:
        ids = session.scalars(select(store.Campaign.campaign_id)).all()
        return store.spend_totals(session=session, campaign_ids=ids)


async def test_one_batch_counts_duplicates_once_and_announces_each_threshold_once(
    engine: Engine, fake_clock
) -> None:  # type: ignore[no-untyped-def]
    handlers = handlers_on(engine, fake_clock)
    await handlers.on_events([consumed(planned(c)) for c in ("c-1", "c-2", "c-3")])
    c1 = [spend("c-1", "333.33"), spend("c-1", "466.67"), spend("c-1", "150.00")]
    c2 = [spend("c-2", "0.01"), spend("c-2", "999.99"), spend("c-2", "0.01")]
    c3 = [spend("c-3", "100.10"), spend("c-3", "50", "EUR")]  # 55.00 USD
    batch = [c1[0], c2[0], c3[0], c1[1], c1[1], c2[1], c1[2], c3[1], c2[2], c2[1], c1[0]]
    assert await handlers.on_events(batch) == []
    # c-1: 333.33 → 800.00 (80 %) → 950.00; c-2: 0.01 → 1000.00 (80 % and 100 % at once)
    assert sorted(crossed(engine)) == [
        ("c-1", 80, "800.00"),
        ("c-2", 80, "1000.00"),
        ("c-2", 100, "1000.00"),
    ]
    # the same events again, as a redelivered batch, then in smaller batches
    assert await handlers.on_events(batch) == []
    for event in batch:
        assert await handlers.on_events([event]) == []
    last = spend("c-1", "50.00")
    assert await handlers.on_events([last]) == []  # 1000.00: 100 %
    assert sorted(crossed(engine)) == [
        ("c-1", 80, "800.00"),
        ("c-1", 100, "1000.00"),
        ("c-2", 80, "1000.00"),
        ("c-2", 100, "1000.00"),
    ]
    assert totals(engine) == {
        "c-1": {"USD": Decimal("1000.00")},
        "c-2": {"USD": Decimal("1000.01")},
        "c-3": {"USD": Decimal("100.10"), "EUR": Decimal("50.00")},
    }
    with store.unit_of_work(engine=engine) as session:
        recorded = session.execute(select(store.Spend.event_id)).scalars().all()
    distinct = {str(e.envelope.event_id) for e in [*batch, last]}
    assert len(distinct) == 9
    assert sorted(recorded) == sorted(distinct)


async def test_spend_in_a_batch_sees_the_planning_event_before_it_and_not_after(
    engine: Engine, fake_clock
) -> None:  # type: ignore[no-untyped-def]
    handlers = handlers_on(engine, fake_clock)
    batch = [
        spend("c-1", "700"),  # campaign not known yet: kept, not evaluated
        consumed(planned("c-1", budget="1000")),  # 700 of 1000: nothing crossed
        spend("c-1", "100"),  # 800: 80 %
        consumed(
            BudgetAllocated(
                campaign_id="c-1", plan_id="p-1", amount=Decimal("2000"), currency="USD"
            )
        ),
        spend("c-1", "900"),  # 1700 of 2000: 80 % again (re-armed by the raise)
    ]
    assert await handlers.on_events(batch) == []
    assert crossed(engine) == [("c-1", 80, "800.00"), ("c-1", 80, "1700.00")]
    assert totals(engine) == {"c-1": {"USD": Decimal("1700.00")}}


async def test_unconvertible_spend_is_rejected_alone_and_can_be_replayed(
    engine: Engine, fake_clock, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    handlers = handlers_on(engine, fake_clock)
    await handlers.on_events([consumed(planned("c-1"))])
    yen = spend("c-1", "5", "JPY")
    batch = [spend("c-1", "100"), yen, spend("c-2", "7", "JPY"), yen, spend("c-1", "700")]
    rejected = await handlers.on_events(batch)
    # the repeat of the first rejected event (same event_id) is not rejected a second time
    positions = [next(i for i, b in enumerate(batch) if b is item) for item, _ in rejected]
    assert positions == [1, 2]
    assert all(reason.startswith("data.currency:") and "JPY" in reason for _, reason in rejected)
    assert totals(engine) == {"c-1": {"USD": Decimal("800.00")}}
    assert crossed(engine) == [("c-1", 80, "800.00")]
    with pytest.raises(Rejected, match="JPY"):
        await handlers.on_spend_recorded(yen)
    # once a rate is configured, the replayed event counts (its id was never marked processed)
    with_yen = FxRates(base="USD", rates={**FX.rates, "JPY": Decimal("0.01")})
    replay = ExecutionHandlers(engine=engine, relay=FakeRelay(), clock=fake_clock, fx=with_yen)  # type: ignore[arg-type]
    assert await replay.on_events([yen]) == []
    assert totals(engine)["c-1"] == {"USD": Decimal("800.00"), "JPY": Decimal("5.00")}


def random_events(seed: int) -> list[Consumed]:
    """Spend of four campaigns in three currencies, planning and budget events among them,
    and redeliveries of earlier events."""
    rng = random.Random(seed)
    events: list[Consumed] = []
    for _ in range(400):
        roll = rng.random()
        if roll < 0.03:
            campaign = f"c-{rng.randrange(4)}"
            budget = str(rng.choice([300, 800, 1500, 4000]))
            if rng.random() < 0.5:
                events.append(consumed(planned(campaign, budget=budget)))
            else:
                data = BudgetAllocated(
                    campaign_id=campaign, plan_id="p-1", amount=Decimal(budget), currency="USD"
                )
                events.append(consumed(data))
        elif roll < 0.1 and events:
            events.append(rng.choice(events))  # a redelivery
        else:
            amount = f"{rng.randrange(1, 5000) / 100:.2f}"
            currency = rng.choice(["USD", "USD", "EUR", "GBP"])
            events.append(spend(f"c-{rng.randrange(4)}", amount, currency))
    return events


def state(engine: Engine) -> tuple[list[tuple[str, dict]], dict, list[tuple]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                store.ThresholdCrossing.campaign_id,
                store.ThresholdCrossing.threshold_pct,
                store.ThresholdCrossing.generation,
                store.ThresholdCrossing.spend,
                store.ThresholdCrossing.rearmed_at.is_(None),
            ).order_by(
                store.ThresholdCrossing.campaign_id,
                store.ThresholdCrossing.threshold_pct,
                store.ThresholdCrossing.generation,
            )
        ).all()
    events = sorted((p["event_id"], p["data"]) for p in outbox(engine))
    return events, totals(engine), [tuple(row) for row in rows]


@pytest.mark.parametrize("seed", [1, 2])
async def test_batches_decide_exactly_what_one_event_at_a_time_decides(
    engine: Engine, fake_clock, tmp_path: Path, seed: int
) -> None:  # type: ignore[no-untyped-def]
    events = random_events(seed)
    reference = new_engine(f"sqlite:///{tmp_path / 'one-by-one.db'}")
    try:
        one_by_one = handlers_on(reference, fake_clock)
        for event in events:
            assert await one_by_one.on_events([event]) == []
        batched = handlers_on(engine, fake_clock)
        rng = random.Random(seed)
        start = 0
        while start < len(events):
            size = rng.choice([1, 7, 50, 200])
            assert await batched.on_events(events[start : start + size]) == []
            start += size
        expected = state(reference)
        assert [e for e in expected[0] if "threshold_pct" in e[1]], "the run crosses thresholds"
        assert state(engine) == expected
    finally:
        reference.dispose()


def test_spend_totals_are_filled_from_spend_recorded_before_they_existed(tmp_path: Path) -> None:
    engine = new_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        rows = [("c-1", "USD", 1050), ("c-1", "USD", 1), ("c-1", "EUR", 700), ("c-2", "USD", 99)]
        with engine.begin() as connection:
            # a database made before spend totals (and before migrations) existed
            connection.execute(text("DROP TABLE execution_spend_totals"))
            connection.execute(text("DROP TABLE execution_alembic_version"))
            connection.execute(
                insert(store.Spend),
                [
                    {
                        "event_id": str(uuid.uuid4()),
                        "campaign_id": campaign,
                        "channel": "search",
                        "amount": Decimal(cents) / 100,
                        "currency": currency,
                        "occurred_at": dt.datetime(2027, 3, 1, tzinfo=dt.UTC),
                    }
                    for campaign, currency, cents in rows
                ],
            )
        store.create_schema(engine=engine)  # adopted: brought to the baseline, stamped
        store.create_schema(engine=engine)  # a second run adds nothing
        with store.unit_of_work(engine=engine) as session:
            filled = store.spend_totals(session=session, campaign_ids=["c-1", "c-2", "c-3"])
        assert filled == {
            "c-1": {"USD": Decimal("10.51"), "EUR": Decimal("7.00")},
            "c-2": {"USD": Decimal("0.99")},
        }
    finally:
        engine.dispose()
