"""The ``lead_funnel`` pre-aggregate on chDB: exact with re-delivered events before any merge,
exact for periods that cut through a lead's history, filled by its migration's backfill, and a
plan's distinct leads and buyers counted once across its campaigns.

Every test uses ids of its own (``unique_id``) in the session's shared chDB engine.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal as D

import pytest
from clickhouse_connect.driver.client import Client

from services.measurement import warehouse
from services.measurement.warehouse import StoredEvent
from shared.events import EventData, new_envelope
from shared.events.ingest import LeadStageChanged, SaleCompleted
from shared.events.planning import CampaignPlanned, PlanCreated

pytestmark = pytest.mark.integration

Y = 2094
MARCH = dt.datetime(Y, 3, 1, tzinfo=dt.UTC)
APRIL = dt.datetime(Y, 4, 1, tzinfo=dt.UTC)
NOW = dt.datetime(Y, 3, 16, tzinfo=dt.UTC)


def at(month: int, day: int, hour: int = 10) -> dt.datetime:
    """A UTC timestamp in the tests' year."""
    return dt.datetime(Y, month, day, hour, tzinfo=dt.UTC)


def event(uid: str, name: str, data: EventData, when: dt.datetime) -> StoredEvent:
    """A stored event whose event_id derives from ``name`` (the same name = a redelivery)."""
    event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{uid}/{name}")
    envelope = new_envelope(data, source="test", event_id=event_id, occurred_at=when)
    return StoredEvent(envelope=envelope, data=data, topic=data.topic, partition=0, offset=0)


def lead(uid: str, name: str, lead_id: str, campaign: str, stage: str, when: dt.datetime):  # type: ignore[no-untyped-def]
    """A lead.stage_changed of ``lead_id`` in ``campaign`` (ids made unique with ``uid``)."""
    data = LeadStageChanged(
        lead_id=f"{lead_id}-{uid}",
        campaign_id=f"{campaign}-{uid}",
        channel="web",
        stage=stage,
        customer_id=f"K-{lead_id}-{uid}" if stage == "customer" else None,
    )
    return event(uid, name, data, when)


def history(uid: str) -> list[StoredEvent]:
    """Leads of campaign A: L1 lead (Feb) → mql (Mar) → customer (Apr); L2 visitor → sql, all
    in March; L3 lead then lost in March; L4 only in February; L5 mql exactly at the end of
    March (1 April 00:00, outside) and visitor exactly at its start (inside)."""
    return [
        lead(uid, "l1-a", "L1", "A", "lead", at(2, 20)),
        lead(uid, "l1-b", "L1", "A", "mql", at(3, 10)),
        lead(uid, "l1-c", "L1", "A", "customer", at(4, 5)),
        lead(uid, "l2-a", "L2", "A", "visitor", at(3, 2)),
        lead(uid, "l2-b", "L2", "A", "sql", at(3, 4)),
        lead(uid, "l3-a", "L3", "A", "lead", at(3, 5)),
        lead(uid, "l3-b", "L3", "A", "lost", at(3, 6)),
        lead(uid, "l4-a", "L4", "A", "opportunity", at(2, 1)),
        lead(uid, "l5-a", "L5", "A", "visitor", at(3, 1, 0)),
        lead(uid, "l5-b", "L5", "A", "mql", at(4, 1, 0)),
    ]


def stages(**reached: int) -> dict[str, int]:
    """A funnel dict: leads reaching each stage or later (stages not named: 0)."""
    names = ("visitor", "lead", "mql", "sql", "sal", "opportunity", "customer")
    return {name: reached.get(name, 0) for name in names}


# highest stage per lead, by hand
# March: L1 mql, L2 sql, L3 lead (+ lost), L5 visitor; L4 has no March event
MARCH_FUNNEL = stages(visitor=4, lead=3, mql=2, sql=1)
# whole history: L1 customer, L2 sql, L3 lead (+ lost), L4 opportunity, L5 mql
EVER_FUNNEL = stages(visitor=5, lead=5, mql=4, sql=3, sal=2, opportunity=2, customer=1)


def test_redelivered_lead_events_count_once_before_merges(
    warehouse_client: Client, unique_id: str
) -> None:
    events = history(unique_id)
    campaign = f"A-{unique_id}"
    # three deliveries of every event, each its own insert (its own part), kept unmerged
    warehouse_client.command("SYSTEM STOP MERGES lead_funnel")
    try:
        for _ in range(3):
            warehouse.insert_events(warehouse_client, events=events)
        rows = warehouse_client.query(
            "SELECT count() FROM lead_funnel WHERE campaign_id = {c:String}",
            parameters={"c": campaign},
        ).result_rows[0][0]
        assert rows == 3 * 5  # every delivery wrote its own pre-aggregated rows
        check_redelivered_history(warehouse_client, campaign)
    finally:
        warehouse_client.command("SYSTEM START MERGES lead_funnel")
    check_redelivered_history(warehouse_client, campaign)  # and after merges may have run


def check_redelivered_history(warehouse_client: Client, campaign: str) -> None:
    ever = warehouse.funnel(warehouse_client, campaign_id=campaign)
    assert ever["stages"] == EVER_FUNNEL
    assert ever["lost"] == 1
    march = warehouse.funnel(warehouse_client, campaign_id=campaign, start=MARCH, end=APRIL)
    assert march["stages"] == MARCH_FUNNEL
    assert march["lost"] == 1
    kpis = warehouse.campaign_kpis(warehouse_client, campaign_id=campaign, now=NOW)
    assert (kpis["leads"], kpis["funnel"]) == (5, EVER_FUNNEL)


def test_periods_cutting_through_a_lead_history_are_exact(
    warehouse_client: Client, unique_id: str
) -> None:
    warehouse.insert_events(warehouse_client, events=history(unique_id))
    campaign = f"A-{unique_id}"

    def funnel(start: dt.datetime | None, end: dt.datetime | None) -> dict[str, int]:
        return warehouse.funnel(warehouse_client, campaign_id=campaign, start=start, end=end)[
            "stages"
        ]

    assert funnel(MARCH, APRIL) == MARCH_FUNNEL
    # from March on (open end): L1 customer (April), L2 sql, L3 lead, L5 mql
    assert funnel(MARCH, None) == stages(visitor=4, lead=4, mql=3, sql=2, sal=1, opportunity=1,
                                         customer=1)  # fmt: skip
    # up to March (open start): L1 mql, L2 sql, L3 lead, L4 opportunity, L5 visitor
    assert funnel(None, APRIL) == stages(visitor=5, lead=4, mql=3, sql=2, sal=1, opportunity=1)
    # one hour: only L5's visitor event at the very start of March
    assert funnel(MARCH, MARCH + dt.timedelta(hours=1)) == stages(visitor=1)
    assert funnel(None, None) == EVER_FUNNEL


def test_backfill_of_the_migration_counts_rows_written_before_it(
    chdb_url: str, unique_id: str
) -> None:
    db = f"pre_{unique_id}"
    client = warehouse.connect(chdb_url, database=db)
    try:
        warehouse.migrate(client, database=db)
        # a database from before the pre-aggregate: raw events only
        client.command(f"DROP VIEW {db}.lead_funnel_mv")
        client.command(f"DROP TABLE {db}.lead_funnel")
        client.command(f"DELETE FROM {db}.schema_migrations WHERE version = 3")
        client.command(f"DROP TABLE {db}.schema_migration_claims")  # it came later still
        events = history(unique_id)
        warehouse.insert_events(client, events=events)
        warehouse.insert_events(client, events=events[:4])  # some redelivered
        assert warehouse.migrate(client, database=db) == [3]
        campaign = f"A-{unique_id}"
        assert warehouse.funnel(client, campaign_id=campaign)["stages"] == EVER_FUNNEL
        # the backfill overlapping rows the view already wrote changes nothing (max / min)
        version, _, statements = warehouse.MIGRATIONS[2]
        assert version == 3
        client.command(statements[-1].format(db=db))
        warehouse.insert_events(client, events=events)
        assert warehouse.funnel(client, campaign_id=campaign)["stages"] == EVER_FUNNEL
        march = warehouse.funnel(client, campaign_id=campaign, start=MARCH, end=APRIL)
        assert march["stages"] == MARCH_FUNNEL
    finally:
        client.command(f"DROP DATABASE IF EXISTS {db}")
        client.close()


@pytest.fixture
def plan_with_shared_lead(warehouse_client: Client, unique_id: str) -> Iterator[str]:
    """Plan P with campaigns A and B; lead S and customer K appear in both."""
    uid = unique_id
    plan = f"P-{uid}"
    events = [
        event(
            uid,
            "plan",
            PlanCreated(
                plan_id=plan,
                name="plan",
                period_start=dt.date(Y, 1, 1),
                period_end=dt.date(Y, 12, 31),
                currency="EUR",
                owner="cmo",
            ),
            at(1, 1),
        )
    ]
    for key in ("A", "B"):
        data = CampaignPlanned(
            campaign_id=f"{key}-{uid}",
            plan_id=plan,
            name=key,
            channel="web",
            owner="ann",
            budget=D("100"),
            currency="EUR",
            start_date=dt.date(Y, 3, 1),
            end_date=dt.date(Y, 3, 31),
        )
        events.append(event(uid, f"campaign-{key}", data, at(1, 2)))
    events += [
        lead(uid, "s-a", "S", "A", "mql", at(3, 2)),
        lead(uid, "s-b", "S", "B", "lead", at(3, 3)),
        lead(uid, "t-a", "T", "A", "lead", at(3, 4)),
        lead(uid, "u-b", "U", "B", "sql", at(3, 5)),
    ]
    for name, campaign, amount in (("k1", "A", "10.00"), ("k2", "B", "30.00")):
        sale = SaleCompleted(
            order_id=f"{name}-{uid}",
            customer_id=f"K-{uid}",
            campaign_id=f"{campaign}-{uid}",
            amount=D(amount),
            currency="EUR",
        )
        events.append(event(uid, name, sale, at(3, 6)))
    warehouse.insert_events(warehouse_client, events=events)
    warehouse.insert_events(warehouse_client, events=events[-3:])  # redelivered
    yield plan


def test_plan_counts_a_lead_and_a_buyer_of_two_campaigns_once(
    warehouse_client: Client, plan_with_shared_lead: str, unique_id: str
) -> None:
    k = warehouse.plan_kpis(warehouse_client, plan_id=plan_with_shared_lead, now=NOW)
    # S (mql in A, lead in B) counts once at its highest stage, T and U once each
    assert k["funnel"] == stages(visitor=3, lead=3, mql=2, sql=1)
    assert (k["customers"], k["orders"], k["revenue"]) == (1, 2, D("40.00"))
    assert k["repeat_purchase_rate"] == D("1.000000")  # K: two orders in the plan
    each = {row["campaign_id"]: row for row in k["campaigns"]}
    a, b = each[f"A-{unique_id}"], each[f"B-{unique_id}"]
    assert a["funnel"] == stages(visitor=2, lead=2, mql=1)  # S mql, T lead
    assert b["funnel"] == stages(visitor=2, lead=2, mql=1, sql=1)  # S lead, U sql
    assert (a["customers"], a["orders"], a["revenue"]) == (1, 1, D("10.00"))
    assert (b["customers"], b["orders"], b["revenue"]) == (1, 1, D("30.00"))
    assert a["repeat_purchase_rate"] == b["repeat_purchase_rate"] == D("0.000000")
    # K's first sale ever (A's, at the same instant: the lower order id) makes one customer
    assert k["new_customers"] == a["new_customers"] + b["new_customers"] == 1
