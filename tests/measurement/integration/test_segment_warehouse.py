"""Rule-based segments in the warehouse on chDB: definition versions written at once from two
clients (two replicas sharing one ClickHouse) — exactly one write of each version stands, and
every reader sees that one; a tombstone hides the definition from the list. The members'
sales, new customers and leads, whole and per day, by hand."""

from __future__ import annotations

import datetime as dt
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal as D
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from services.measurement import warehouse
from services.measurement.warehouse import StoredEvent, segment_defs, segment_members
from shared.events import EventData, new_envelope
from shared.events.ingest import LeadStageChanged, SaleCompleted
from shared.events.planning import CampaignPlanned

pytestmark = pytest.mark.integration


def test_the_first_write_of_a_version_stands(
    warehouse_client: Client, chdb_url: str, unique_id: str
) -> None:
    other = warehouse.connect(chdb_url, database="mrm")
    sid = f"race-{unique_id}"
    try:
        for version in range(1, 6):

            def write(args: tuple[Client, str], version: int = version) -> bool:
                client, name = args
                return segment_defs.write(
                    client, segment_id=sid, version=version, name=name, rfm_days=365, author=name
                )

            with ThreadPoolExecutor(2) as pool:
                won = list(pool.map(write, [(warehouse_client, "a"), (other, "b")]))
            assert sorted(won) == [False, True]
            winner = "a" if won[0] else "b"
            for client in (warehouse_client, other):
                latest = segment_defs.latest(client, segment_id=sid)
                assert latest is not None
                assert (latest.version, latest.name) == (version, winner)
        mine = [d.segment_id for d in segment_defs.current(warehouse_client)]
        assert sid in mine
        assert segment_defs.write(
            warehouse_client, segment_id=sid, version=6, removed=True, author="a"
        )
        assert sid not in [d.segment_id for d in segment_defs.current(other)]
        latest = segment_defs.latest(other, segment_id=sid)
        assert latest is not None and latest.removed and latest.version == 6
    finally:
        other.close()


def test_member_measures_by_hand(warehouse_client: Client, unique_id: str) -> None:
    """Members m1, m2 (x is no member), 2089: m1 buys 100.00 from a campaign of margin 0.5 on
    03-02 (delivered twice) and 50.00 unattributed on 03-03; m2 buys 200.00 EUR on 03-03 after
    a first sale in February; x buys 999.00. Lead La names m2 and reaches customer; lead Lb
    names m1 at mql and is lost; lead Lc names x."""
    u = unique_id
    at = lambda month, day: dt.datetime(2089, month, day, 12, tzinfo=dt.UTC)  # noqa: E731
    offset = iter(range(1000))

    def event(name: str, data: EventData, when: dt.datetime) -> StoredEvent:
        envelope = new_envelope(
            data,
            source="test",
            event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{u}/{name}"),
            occurred_at=when,
        )
        return StoredEvent(
            envelope=envelope, data=data, topic=data.topic, partition=0, offset=next(offset)
        )

    def sale(n: int, who: str, amount: str, when: dt.datetime, **more: Any) -> StoredEvent:
        data = SaleCompleted(
            order_id=f"o{n}-{u}",
            customer_id=f"{who}-{u}",
            amount=D(amount),
            currency=more.pop("currency", "USD"),
            **more,
        )
        return event(f"sale{n}", data, when)

    def lead(name: str, stage: str, when: dt.datetime, who: str | None) -> StoredEvent:
        data = LeadStageChanged(
            lead_id=f"{name}-{u}",
            campaign_id=None,
            channel="search",
            stage=stage,
            customer_id=f"{who}-{u}" if who else None,
        )
        return event(f"{name}/{stage}", data, when)

    campaign = CampaignPlanned(
        campaign_id=f"C-{u}",
        plan_id=f"P-{u}",
        name="c",
        channel="search",
        owner="ann",
        budget=D("1000"),
        currency="USD",
        start_date=dt.date(2089, 3, 1),
        end_date=dt.date(2089, 3, 31),
        gross_margin=D("0.5"),
    )
    first = sale(1, "m1", "100.00", at(3, 2), campaign_id=f"C-{u}")
    events = [
        event("campaign", campaign, at(2, 1)),
        first,
        first,  # redelivered: counts once
        sale(2, "m1", "50.00", at(3, 3)),
        sale(3, "m2", "30.00", at(2, 10)),
        sale(4, "m2", "200.00", at(3, 3), currency="EUR"),
        sale(5, "x", "999.00", at(3, 3)),
        lead("La", "lead", at(3, 1), None),
        lead("La", "customer", at(3, 3), "m2"),
        lead("Lb", "mql", at(3, 2), "m1"),
        lead("Lb", "lost", at(3, 3), None),
        lead("Lc", "lead", at(3, 2), "x"),
    ]
    warehouse.insert_events(warehouse_client, events=events)
    members = [f"m1-{u}", f"m2-{u}"]
    march = {"start": at(3, 1).replace(hour=0), "end": at(4, 1).replace(hour=0)}
    whole = segment_members.member_measures(warehouse_client, members=members, **march)[""]
    assert whole.revenue == {"USD": D("150.00"), "EUR": D("200.00")}
    assert whole.gross_profit == {"USD": D("100.00"), "EUR": D("200.00")}  # 100 × 0.5 + 50
    assert whole.orders_by_currency == {"USD": 2, "EUR": 1}
    assert (whole.orders, whole.buyers, whole.repeat_buyers) == (3, 2, 1)
    assert whole.new_customers == 1  # m1; m2 first bought in February
    # La reaches customer (rank 6), Lb mql (rank 2) and is lost
    assert whole.reached == (2, 2, 2, 1, 1, 1, 1)
    assert whole.lost == 1
    daily = segment_members.member_measures(
        warehouse_client, members=members, bucket="day", **march
    )
    assert sorted(daily) == [dt.date(2089, 3, 1), dt.date(2089, 3, 2), dt.date(2089, 3, 3)]
    assert daily[dt.date(2089, 3, 2)].revenue == {"USD": D("100.00")}
    assert daily[dt.date(2089, 3, 2)].new_customers == 1
    assert daily[dt.date(2089, 3, 3)].revenue == {"USD": D("50.00"), "EUR": D("200.00")}
    assert daily[dt.date(2089, 3, 1)].reached == (1, 1, 0, 0, 0, 0, 0)  # La's lead
    assert segment_members.member_measures(warehouse_client, members=[], **march) == {}
