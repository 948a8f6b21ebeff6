"""A rule-based segment's sizes over 52 weekly buckets against one membership evaluation.

``python -m mrm.bench.segment_sizes [--customers N]`` builds N customers on a fresh chDB engine
in a temporary directory (a profile each, a tenth of them changed within the year, about three
sales each over two years in EUR, USD and GBP, a tenth without any), written through the
warehouse's insert path, and defines a rule with an RFM part and a profile part. It then times
one ``membership`` evaluation (the floor: one read of the profiles and one year of sales, one
scoring), the sizes of 52 weeks as they are answered (``segment_sizes``), and, unless
``--skip-per-bucket``, one ``membership`` per bucket (how the sizes were computed before).
Figures only: nothing is asserted on time.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal

from clickhouse_connect.driver.client import Client

from services.measurement import rule_segments, segment_rules, warehouse
from services.measurement.segment_sizes import sizes_as_of
from services.measurement.warehouse import StoredEvent, Warehouse
from shared.events import EventData, new_envelope
from shared.events.customers import CustomerProfileUpdated
from shared.events.ingest import SaleCompleted
from shared.money import FxRates

FIRST = dt.date(2027, 1, 4)  # a Monday: 52 whole ISO weeks
LAST = FIRST + dt.timedelta(weeks=52, days=-1)
SALES_FROM = FIRST - dt.timedelta(days=365)
FX = FxRates(base="EUR", rates={"USD": Decimal("0.92"), "GBP": Decimal("1.17")})
REGIONS = ("EMEA", "AMER", "APAC")
RULE = {
    "conditions": [
        {"field": "region", "op": "eq", "value": "EMEA"},
        {"field": "rfm_segment", "op": "in", "value": ["champions", "loyal", "promising"]},
    ]
}
_BATCH = 50_000


def _at(day: dt.date, rng: random.Random) -> dt.datetime:
    time_of_day = dt.time(rng.randrange(24), rng.randrange(60), tzinfo=dt.UTC)
    return dt.datetime.combine(day, time_of_day)


def events(customers: int, *, seed: int = 7) -> Iterator[StoredEvent]:
    """The profiles and sales of ``customers`` customers, reproducibly."""
    rng = random.Random(seed)
    offset = 0

    def stored(data: EventData, at: dt.datetime) -> StoredEvent:
        nonlocal offset
        offset += 1
        envelope = new_envelope(data, source="bench", event_id=uuid.uuid4(), occurred_at=at)
        return StoredEvent(
            envelope=envelope, data=data, topic=data.topic, partition=0, offset=offset
        )

    span = (LAST - SALES_FROM).days + 1
    for n in range(customers):
        cid = f"C{n:07d}"
        region = rng.choice(REGIONS)
        first = _at(SALES_FROM - dt.timedelta(days=30), rng)
        yield stored(
            CustomerProfileUpdated(
                customer_id=cid, version=1, industry="software", size="large", region=region
            ),
            first,
        )
        if rng.random() < 0.1:
            changed = _at(FIRST + dt.timedelta(days=rng.randrange(364)), rng)
            yield stored(
                CustomerProfileUpdated(
                    customer_id=cid, version=2, industry="software", region=rng.choice(REGIONS)
                ),
                changed,
            )
        if rng.random() < 0.1:
            continue  # no sales
        currency = rng.choices(("EUR", "USD", "GBP"), weights=(85, 10, 5))[0]
        for order in range(rng.randint(1, 6)):
            day = SALES_FROM + dt.timedelta(days=rng.randrange(span))
            for line in range(rng.choice((1, 1, 1, 2))):
                amount = Decimal(rng.randrange(1_000, 500_000)) / 100
                sale = SaleCompleted(
                    order_id=f"{cid}-{order}", customer_id=cid, amount=amount, currency=currency
                )
                yield stored(sale, _at(day, rng) + dt.timedelta(minutes=line))


def load(client: Client, customers: int) -> dict[str, int]:
    """Write the bench's events in batches; rows per table."""
    counts: dict[str, int] = {}
    batch: list[StoredEvent] = []
    for event in events(customers):
        batch.append(event)
        if len(batch) == _BATCH:
            for table, n in warehouse.insert_events(client, events=batch).items():
                counts[table] = counts.get(table, 0) + n
            batch = []
    for table, n in warehouse.insert_events(client, events=batch).items():
        counts[table] = counts.get(table, 0) + n
    return counts


async def measure(store: Warehouse, *, per_bucket: bool) -> None:
    definition = rule_segments.Definition(
        segment_id="bench",
        version=1,
        name="bench",
        description="",
        rule=segment_rules.check_rule(RULE),
        rfm_days=365,
    )
    points = rule_segments.size_points(start=FIRST, end=LAST, bucket="week")
    days = [day for _, day in points]
    began = time.perf_counter()
    one = await rule_segments.membership(store, FX, definition=definition, as_of=LAST, full=False)
    once = time.perf_counter() - began
    print(f"one membership evaluation:        {once:8.2f} s ({len(one.members)} members)")
    began = time.perf_counter()
    sizes = await sizes_as_of(store, FX, definition=definition, days=days)
    new = time.perf_counter() - began
    print(f"sizes, {len(days)} weekly buckets:       {new:8.2f} s = {new / once:.1f} evaluations")
    if per_bucket:
        began = time.perf_counter()
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
        took = time.perf_counter() - began
        print(f"one membership per bucket:        {took:8.2f} s = {took / once:.1f} evaluations")
        print(f"sizes equal: {old == sizes}")
    print(f"sizes: first {sizes[:3]} … last {sizes[-3:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mrm.bench.segment_sizes")
    parser.add_argument("--customers", type=int, default=100_000, help="customers to build")
    parser.add_argument(
        "--skip-per-bucket", action="store_true", help="do not time one membership per bucket"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mrm-sizes-") as path:
        client = warehouse.connect(f"chdb://{path}", database="mrm")
        warehouse.migrate(client, database="mrm")
        began = time.perf_counter()
        counts = load(client, args.customers)
        print(
            f"{args.customers} customers written in {time.perf_counter() - began:.1f} s: {counts}"
        )
        asyncio.run(measure(Warehouse(client), per_bucket=not args.skip_per_bucket))
        client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
