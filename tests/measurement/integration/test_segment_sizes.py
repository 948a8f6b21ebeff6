"""A segment's sizes over time (``segment_sizes``, one read for all buckets) equal one
``rule_segments.membership`` per bucket, on randomised customers in a database of their own:
profiles changed mid-range (one version arriving after a higher one), customers without a
profile or without sales, orders with lines on two days, redelivered sales, and sales in four
currencies, one without a rate."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from services.measurement import rule_segments, segment_rules, warehouse
from services.measurement.segment_sizes import sizes_as_of
from services.measurement.warehouse import StoredEvent, Warehouse
from shared.events import EventData, new_envelope
from shared.events.customers import CustomerProfileUpdated
from shared.events.ingest import SaleCompleted
from shared.money import FxRates

pytestmark = pytest.mark.integration

FX = FxRates(base="EUR", rates={"USD": Decimal("0.92"), "GBP": Decimal("1.17")})  # JPY: none
FIRST = dt.date(2091, 3, 1)
LAST = dt.date(2091, 6, 20)
SALES_FROM = FIRST - dt.timedelta(days=60)


def _events(rng: random.Random, customers: int) -> Iterator[StoredEvent]:
    offset = iter(range(10**6))

    def at(first: dt.date, last: dt.date) -> dt.datetime:
        day = first + dt.timedelta(days=rng.randrange((last - first).days + 1))
        return dt.datetime.combine(day, dt.time(rng.randrange(24), rng.randrange(60)), dt.UTC)

    def stored(data: EventData, when: dt.datetime) -> StoredEvent:
        envelope = new_envelope(data, source="test", event_id=uuid.uuid4(), occurred_at=when)
        return StoredEvent(
            envelope=envelope, data=data, topic=data.topic, partition=0, offset=next(offset)
        )

    def profile(cid: str, version: int) -> CustomerProfileUpdated:
        return CustomerProfileUpdated(
            customer_id=cid,
            version=version,
            industry=rng.choice(("software", "retail", None)),
            region=rng.choice(("EMEA", "AMER", None)),
        )

    for n in range(customers):
        cid = f"c{n:03d}"
        shape = rng.random()
        if shape > 0.15:  # else: no profile at all
            yield stored(profile(cid, 1), at(SALES_FROM, FIRST))
            if rng.random() < 0.4:  # changed mid-range, version 3 sometimes before version 2
                yield stored(profile(cid, 3), at(FIRST, LAST))
                yield stored(profile(cid, 2), at(FIRST, LAST))
        if 0.15 < shape < 0.3:
            continue  # no sales
        currency = rng.choices(("EUR", "USD", "GBP", "JPY"), weights=(6, 2, 2, 1))[0]
        for order in range(rng.randint(1, 8)):
            when = at(SALES_FROM, LAST + dt.timedelta(days=3))
            kind = rng.choice((currency, currency, "EUR"))
            for line in range(rng.choice((1, 1, 2))):  # a second line on the next day
                sale = SaleCompleted(
                    order_id=f"{cid}-{order}",
                    customer_id=cid,
                    amount=Decimal(rng.randrange(100, 90_000)) / 100,
                    currency=kind,
                )
                event = stored(sale, when + dt.timedelta(days=line))
                yield event
                if rng.random() < 0.05:
                    yield event  # redelivered: counts once


RULES: tuple[tuple[dict[str, Any], int], ...] = (
    (  # profile and RFM
        {
            "conditions": [
                {"field": "region", "op": "eq", "value": "EMEA"},
                {"field": "rfm_segment", "op": "in", "value": ["champions", "loyal", "new"]},
            ]
        },
        30,
    ),
    ({"conditions": [{"field": "monetary_score", "op": "gte", "value": 4}]}, 45),  # RFM only
    ({"conditions": [{"field": "industry", "op": "eq", "value": "software"}]}, 30),  # profile
    ({"conditions": [{"field": "revenue", "op": "gte", "value": "900.00"}]}, 30),  # converted
    (  # holds for a customer without facts: both sources read whatever the fields
        {
            "conditions": [
                {"field": "region", "op": "ne", "value": "AMER"},
                {
                    "any": [
                        {"field": "recency_days", "op": "lte", "value": 10},
                        {"field": "orders", "op": "not_in", "value": [1, 2]},
                    ]
                },
            ]
        },
        20,
    ),
)


@pytest.fixture
def own_warehouse(chdb_url: str, unique_id: str) -> Iterator[Client]:
    """A migrated database of this test alone: the sizes count every customer of it."""
    database = f"sizes_{unique_id}"
    client = warehouse.connect(chdb_url, database=database)
    warehouse.migrate(client, database=database)
    yield client
    client.command(f"DROP DATABASE IF EXISTS {database}")
    client.close()


@pytest.mark.parametrize("seed", [1, 2])
def test_sizes_equal_one_membership_per_bucket(own_warehouse: Client, seed: int) -> None:
    rng = random.Random(seed)
    warehouse.insert_events(own_warehouse, events=list(_events(rng, customers=80)))
    store = Warehouse(own_warehouse)

    async def both(definition: rule_segments.Definition, days: list[dt.date]) -> Any:
        new = await sizes_as_of(store, FX, definition=definition, days=days)
        old = [
            len(
                (
                    await rule_segments.membership(
                        store, FX, definition=definition, as_of=day, full=False
                    )
                ).members
            )
            for day in days
        ]
        return new, old

    for rule, rfm_days in RULES:
        definition = rule_segments.Definition(
            segment_id="s",
            version=1,
            name="s",
            description="",
            rule=segment_rules.check_rule(rule),
            rfm_days=rfm_days,
        )
        for bucket in ("day", "week", "month"):
            end = FIRST + dt.timedelta(days=40) if bucket == "day" else LAST
            points = rule_segments.size_points(start=FIRST, end=end, bucket=bucket)
            new, old = asyncio.run(both(definition, [day for _, day in points]))
            assert new == old, (rule, bucket)
            assert len(set(old)) > 1, (rule, bucket)  # the sizes move over the range


def test_sizes_want_ascending_days(own_warehouse: Client) -> None:
    definition = rule_segments.rfm_definition("rfm:champions")
    assert definition is not None
    days = [LAST, FIRST]
    with pytest.raises(ValueError, match="ascending"):
        asyncio.run(sizes_as_of(Warehouse(own_warehouse), FX, definition=definition, days=days))
