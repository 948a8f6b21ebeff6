"""The warehouse (ClickHouse adapter) on chDB: migrations, dedup before merges, every KPI by hand.

All tests share one chDB engine (one path per process); each test prefixes every id it uses
(campaigns, plans, leads, customers, targets) with a fresh ``unique_id``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal as D
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from services.measurement import warehouse
from services.measurement.warehouse import StoredEvent, alerts
from shared.events import EventData, new_envelope
from shared.events.ingest import (
    AdMetricsReported,
    LeadStageChanged,
    SaleCompleted,
    SpendRecorded,
    TaskStatusChanged,
)
from shared.events.planning import (
    BudgetAllocated,
    BudgetReallocated,
    CampaignPlanned,
    CampaignStatusChanged,
    CampaignUpdated,
    KpiTargetSet,
    PlanApproved,
    PlanCreated,
    StageScheduled,
)

pytestmark = pytest.mark.integration

MARCH = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)
APRIL = dt.datetime(2027, 4, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2027, 3, 16, 12, tzinfo=dt.UTC)


def at(month: int, day: int, hour: int = 10) -> dt.datetime:
    """A UTC timestamp in 2027."""
    return dt.datetime(2027, month, day, hour, tzinfo=dt.UTC)


class Events:
    """Builds stored events with deterministic event ids, so a replay is a true duplicate."""

    def __init__(self, uid: str) -> None:
        self.uid = uid
        self.offset = 0

    def __call__(self, name: str, data: EventData, occurred_at: dt.datetime) -> StoredEvent:
        self.offset += 1
        event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{self.uid}/{name}")
        envelope = new_envelope(data, source="test", event_id=event_id, occurred_at=occurred_at)
        return StoredEvent(
            envelope=envelope, data=data, topic=data.topic, partition=0, offset=self.offset
        )


def _scenario(uid: str) -> tuple[list[StoredEvent], list[StoredEvent]]:
    """The fixed hand-made event set: (main batch, a later batch of duplicates and late events).

    Plan P: campaign A (margin 0.40, dates Mar 1-31) and B (margin 0.50, dates Mar 1-Apr 30).
    The period under test is March 2027.
    """
    e = Events(uid)
    P, A, B = f"P-{uid}", f"A-{uid}", f"B-{uid}"

    def lead(
        name: str,
        lead_id: str,
        campaign: str | None,
        stage: str,
        when: dt.datetime,
        customer: str | None = None,
    ) -> StoredEvent:
        data = LeadStageChanged(
            lead_id=f"{lead_id}-{uid}",
            campaign_id=campaign,
            channel="search",
            stage=stage,
            customer_id=customer and f"{customer}-{uid}",
        )
        return e(name, data, when)

    def sale(
        name: str,
        customer: str,
        campaign: str | None,
        amount: str,
        when: dt.datetime,
        discount: str = "0",
    ) -> StoredEvent:
        data = SaleCompleted(
            order_id=f"o-{name}-{uid}",
            customer_id=f"{customer}-{uid}",
            campaign_id=campaign,
            amount=D(amount),
            discount_amount=D(discount),
            currency="EUR",
        )
        return e(name, data, when)

    def campaign(
        model: type,
        name: str,
        cid: str,
        version: int,
        budget: str,
        margin: str,
        end: dt.date,
        title: str,
        when: dt.datetime,
        status: str = "draft",
    ) -> StoredEvent:
        data = model(
            campaign_id=cid,
            plan_id=P,
            name=title,
            channel="search",
            owner="ann",
            budget=D(budget),
            currency="EUR",
            start_date=dt.date(2027, 3, 1),
            end_date=end,
            gross_margin=D(margin),
            status=status,
            version=version,
        )
        return e(name, data, when)

    a_planned = campaign(
        CampaignPlanned, "a-planned", A, 1, "1000", "0.40", dt.date(2027, 3, 31), "A", at(2, 1)
    )
    s1 = sale("s1", "C1", A, "1000.00", at(3, 5), discount="50.00")
    spend1 = e(
        "spend1",
        SpendRecorded(campaign_id=A, channel="search", amount=D("100.00"), currency="EUR"),
        at(3, 2),
    )
    ad1 = e(
        "ad1",
        AdMetricsReported(campaign_id=A, channel="search", impressions=10_000, clicks=300),
        at(3, 2),
    )
    l5_customer = lead("l5-customer", "L5", A, "customer", at(3, 20), customer="C1")
    main = [
        e(
            "plan",
            PlanCreated(
                plan_id=P,
                name="Plan 2027",
                period_start=dt.date(2027, 1, 1),
                period_end=dt.date(2027, 12, 31),
                currency="EUR",
                owner="cmo",
            ),
            at(1, 1),
        ),
        e("plan-approved", PlanApproved(plan_id=P, approved_by="cmo"), at(1, 2)),
        a_planned,
        campaign(
            CampaignPlanned, "b-planned", B, 1, "2000", "0.50", dt.date(2027, 4, 30), "B", at(2, 1)
        ),
        # B: 2000 -> 2500 (allocated) -> 2000 (500 moved to A, A: 1000 -> 1500)
        e(
            "b-alloc",
            BudgetAllocated(campaign_id=B, plan_id=P, amount=D("2500"), currency="EUR"),
            at(2, 2),
        ),
        e(
            "realloc",
            BudgetReallocated(
                reallocation_id=f"r-{uid}",
                plan_id=P,
                from_campaign_id=B,
                to_campaign_id=A,
                amount=D("500"),
                currency="EUR",
                from_budget=D("2000"),
                to_budget=D("1500"),
                requested_by="cmo",
            ),
            at(2, 3),
        ),
        campaign(
            CampaignUpdated, "a-v2", A, 2, "1500", "0.40", dt.date(2027, 3, 31), "A two", at(2, 4)
        ),
        e(
            "a-active",
            CampaignStatusChanged(
                campaign_id=A, plan_id=P, status="active", previous_status="draft", version=3
            ),
            at(2, 5),
        ),
        e(
            "stage",
            StageScheduled(stage_id=f"st-{uid}", campaign_id=A, name="Launch", deadline=at(3, 1)),
            at(2, 5),
        ),  # ignored by the warehouse
        e("task", TaskStatusChanged(campaign_id=A, stage_id=f"st-{uid}", status="done"), at(3, 1)),
        # spend: A 100.00 + 250.50 in March, 40.00 in February; B 300.00 in March
        spend1,
        e(
            "spend2",
            SpendRecorded(campaign_id=A, channel="social", amount=D("250.50"), currency="EUR"),
            at(3, 9),
        ),
        e(
            "spend-feb",
            SpendRecorded(campaign_id=A, channel="search", amount=D("40.00"), currency="EUR"),
            at(2, 20),
        ),
        e(
            "spend-b",
            SpendRecorded(campaign_id=B, channel="search", amount=D("300.00"), currency="EUR"),
            at(3, 3),
        ),
        # ad metrics: A 10000/300 + 5000/200, B 4000/100
        ad1,
        e(
            "ad2",
            AdMetricsReported(campaign_id=A, channel="social", impressions=5_000, clicks=200),
            at(3, 10),
        ),
        e(
            "ad-b",
            AdMetricsReported(campaign_id=B, channel="search", impressions=4_000, clicks=100),
            at(3, 4),
        ),
        # leads of A
        lead("l1-v", "L1", A, "visitor", at(3, 1)),
        lead("l1-l", "L1", A, "lead", at(3, 2)),
        lead("l1-m", "L1", A, "mql", at(3, 3)),  # L1: highest mql
        lead("l2-v", "L2", A, "visitor", at(3, 1)),
        lead("l2-s", "L2", A, "sql", at(3, 4)),  # L2: skips lead and mql, highest sql
        lead("l3-l", "L3", A, "lead", at(3, 2)),
        lead("l3-m", "L3", A, "mql", at(3, 5)),
        lead("l3-x", "L3", A, "lost", at(3, 6)),  # L3: lost ranks nowhere, highest mql
        lead("l4-x", "L4", A, "lost", at(3, 6)),  # L4: only lost, no stage at all
        lead("l5-l", "L5", A, "lead", at(3, 2)),
        lead("l5-s", "L5", A, "sql", at(3, 7)),
        lead("l5-a", "L5", A, "sal", at(3, 8)),
        lead("l5-o", "L5", A, "opportunity", at(3, 9)),
        l5_customer,  # L5: highest customer
        lead("l6-v", "L6", A, "visitor", at(3, 3)),  # L6: visitor only
        lead("l7-l", "L7", A, "lead", at(2, 25)),  # February: outside the period
        lead("l7-m", "L7", A, "mql", at(3, 11)),  # L7: highest in March mql
        lead("l7-s", "L7", A, "sql", at(4, 2)),  # April: outside the period
        # leads of B (L1 also appears in B, as sql) and an unattributed lead
        lead("l1-b", "L1", B, "sql", at(3, 12)),
        lead("l9-l", "L9", B, "lead", at(3, 2)),
        lead("l9-m", "L9", B, "mql", at(3, 3)),
        lead("l10-l", "L10", B, "lead", at(3, 2)),
        lead("l8-l", "L8", None, "lead", at(3, 2)),
        # sales
        s1,  # C1: first sale ever, attributed to A, in March
        sale("s2", "C1", A, "500.00", at(3, 20)),  # C1 repeat purchase in A
        sale("s3", "C1", B, "200.00", at(4, 10)),  # C1 in April, attributed to B
        sale("s4", "C2", B, "300.00", at(1, 15)),  # C2: first sale ever in January, to B
        sale("s5", "C2", A, "400.00", at(3, 10), discount="20.00"),  # C2 buys in A in March
        sale("s6", "C3", None, "250.00", at(3, 12)),  # C3: first sale unattributed
        sale("s7", "C3", A, "150.00", at(3, 15)),
        sale("s8", "C4", B, "600.00", at(3, 25), discount="30.00"),  # C4: new customer of B
        sale("s9", "C5", None, "80.00", at(3, 2)),  # C5: unattributed only
        sale("s10", "C6", A, "700.00", at(2, 20)),  # C6: first sale to A, in February
        # targets (t1 is set twice: the later value 80 wins)
        e(
            "t1-old",
            KpiTargetSet(
                target_id=f"t1-{uid}",
                campaign_id=A,
                kpi="cpl",
                target=D("60"),
                direction="lower_is_better",
                weight=D("2"),
            ),
            at(2, 1),
        ),
        e(
            "t1",
            KpiTargetSet(
                target_id=f"t1-{uid}",
                campaign_id=A,
                kpi="cpl",
                target=D("80"),
                direction="lower_is_better",
                weight=D("2"),
            ),
            at(2, 6),
        ),
        e(
            "t2",
            KpiTargetSet(
                target_id=f"t2-{uid}",
                campaign_id=A,
                kpi="romi",
                target=D("1.0"),
                direction="higher_is_better",
            ),
            at(2, 6),
        ),
        e(
            "t3",
            KpiTargetSet(
                target_id=f"t3-{uid}",
                campaign_id=A,
                kpi="ctr",
                target=D("0.05"),
                direction="higher_is_better",
            ),
            at(2, 6),
        ),
        e(
            "t4",
            KpiTargetSet(
                target_id=f"t4-{uid}",
                campaign_id=A,
                kpi="new_customers",
                target=D("0.5"),
                direction="higher_is_better",
            ),
            at(2, 6),
        ),
        e(
            "t5",
            KpiTargetSet(
                target_id=f"t5-{uid}",
                campaign_id=A,
                kpi="nps",
                target=D("50"),
                direction="higher_is_better",
                weight=D("7"),
            ),
            at(2, 6),
        ),
        e(
            "tb",
            KpiTargetSet(
                target_id=f"tb-{uid}",
                campaign_id=B,
                kpi="cac",
                target=D("250"),
                direction="lower_is_better",
            ),
            at(2, 6),
        ),
    ]
    # a second batch: redeliveries (same event_id) and a stale campaign state (version 1)
    again = [spend1, ad1, s1, l5_customer, a_planned]
    return main, again


@pytest.fixture
def scenario(warehouse_client: Client, unique_id: str) -> dict[str, str]:
    """The scenario inserted as two batches (the second one only duplicates)."""
    main, again = _scenario(unique_id)
    warehouse.insert_events(warehouse_client, events=main)
    warehouse.insert_events(warehouse_client, events=again)
    return {
        "plan": f"P-{unique_id}",
        "A": f"A-{unique_id}",
        "B": f"B-{unique_id}",
        "uid": unique_id,
    }


def test_migrate_twice_is_a_noop(warehouse_client: Client) -> None:
    def tables() -> list[tuple[Any, ...]]:
        sql = "SELECT name, engine FROM system.tables WHERE database = 'mrm' ORDER BY name"
        return [tuple(row) for row in warehouse_client.query(sql).result_rows]

    before = tables()
    versions = warehouse_client.query("SELECT count() FROM mrm.schema_migrations").result_rows
    assert warehouse.migrate(warehouse_client, database="mrm") == []
    assert warehouse.migrate(warehouse_client, database="mrm") == []
    assert tables() == before
    assert warehouse_client.query("SELECT count() FROM mrm.schema_migrations").result_rows == (
        versions
    )
    names = {name for name, _ in before}
    expected = {
        "spend",
        "ad_metrics",
        "lead_events",
        "sales",
        "tasks",
        "plans",
        "campaigns",
        "kpi_targets",
        "alert_state",
        "schema_migrations",
        "campaigns_current",
    }
    assert expected <= names


def test_fresh_database_migrates_every_version(warehouse_client: Client, unique_id: str) -> None:
    db = f"m_{unique_id}"
    try:
        assert warehouse.migrate(warehouse_client, database=db) == list(range(1, 16))
        assert warehouse.migrate(warehouse_client, database=db) == []
    finally:
        warehouse_client.command(f"DROP DATABASE IF EXISTS {db}")


def test_ping(warehouse_client: Client) -> None:
    assert warehouse.ping(warehouse_client) is True


def test_campaign_a_kpis_by_hand(warehouse_client: Client, scenario: dict[str, str]) -> None:
    k = warehouse.campaign_kpis(
        warehouse_client, campaign_id=scenario["A"], start=MARCH, end=APRIL, now=NOW
    )
    assert (k["plan_id"], k["name"], k["status"], k["currency"]) == (
        scenario["plan"],
        "A two",
        "active",
        "EUR",
    )  # v2 name, v3 status; stale v1 ignored
    assert k["spend"] == D("350.50")  # 100.00 + 250.50 (duplicate once, February excluded)
    assert k["impressions"] == 15_000  # 10000 + 5000
    assert k["clicks"] == 500  # 300 + 200
    assert k["ctr"] == D("0.033333")  # 500 / 15000
    assert k["cpc"] == D("0.70")  # 350.50 / 500 = 0.701
    # highest stage in March: L1 mql, L2 sql, L3 mql, L5 customer, L6 visitor, L7 mql; L4 none
    assert k["funnel"] == {
        "visitor": 6,
        "lead": 5,
        "mql": 5,
        "sql": 2,
        "sal": 1,
        "opportunity": 1,
        "customer": 1,
    }
    assert k["lost"] == 2  # L3, L4
    assert k["leads"] == 5  # L1 L2 L3 L5 L7
    assert k["cpl"] == D("70.10")  # 350.50 / 5
    assert k["conversions"] == {
        "visitor_to_lead": D("0.833333"),  # 5 / 6
        "lead_to_mql": D("1.000000"),  # 5 / 5
        "mql_to_sql": D("0.400000"),  # 2 / 5
        "sql_to_sal": D("0.500000"),  # 1 / 2
        "sal_to_opportunity": D("1.000000"),  # 1 / 1
        "opportunity_to_customer": D("1.000000"),  # 1 / 1
        "lead_to_customer": D("0.200000"),  # 1 / 5
    }
    # March sales in A: s1 1000.00 (disc 50), s2 500.00, s5 400.00 (disc 20), s7 150.00
    assert k["revenue"] == D("2050.00")
    assert k["orders"] == 4
    assert k["discounts"] == D("70.00")
    assert k["gross_profit"] == D("820.00")  # 2050 * 0.40
    assert k["average_check"] == D("512.50")  # 2050 / 4
    assert k["customers"] == 3  # C1 C2 C3
    assert k["repeat_purchase_rate"] == D("0.333333")  # C1 (2 orders) / 3
    # first sale ever in March and to A: C1 only (C2 first to B, C3 unattributed, C6 February)
    assert k["new_customers"] == 1
    assert k["cac"] == D("350.50")  # 350.50 / 1
    # A's customers ever: C1 (1000*.4 + 500*.4 + 200*.5 = 700), C6 (700*.4 = 280)
    assert k["ltv_customers"] == 2
    assert k["ltv"] == D("490.00")  # (700 + 280) / 2
    assert k["ltv_cac"] == D("1.398003")  # 490 / 350.50
    assert k["romi"] == D("1.339515")  # (820 - 350.50) / 350.50
    assert k["roi"] == D("0.950059")  # (820 - 350.50 - 70) / (350.50 + 70) = 399.50 / 420.50
    assert k["marketing_pct_of_sales"] == D("0.170976")  # 350.50 / 2050
    assert k["budget"] == D("1500.00")  # 1000 + 500 reallocated from B
    assert k["budget_utilisation"] == D("0.233667")  # 350.50 / 1500
    assert k["forecast_at_completion"] == D("701.00")  # 15.5 of 31 days: 350.50 / 0.5
    # CKPI: cpl 80/70.10 (w2), romi 1.339515/1, ctr 0.033333/0.05, new_customers 1/0.5 -> 1.5;
    # nps has no actual and is skipped: (2*1.141227 + 1.339515 + 0.66666 + 1.5) / 5 * 100
    assert k["ckpi"] == D("115.77")


def test_campaign_b_kpis_by_hand(warehouse_client: Client, scenario: dict[str, str]) -> None:
    k = warehouse.campaign_kpis(
        warehouse_client, campaign_id=scenario["B"], start=MARCH, end=APRIL, now=NOW
    )
    assert k["status"] == "draft"
    assert k["spend"] == D("300.00")
    assert (k["impressions"], k["clicks"], k["ctr"], k["cpc"]) == (
        4000,
        100,
        D("0.025000"),
        D("3.00"),
    )  # 100 / 4000, 300 / 100
    assert k["funnel"]["lead"] == 3  # L1 (sql), L9 (mql), L10 (lead)
    assert k["funnel"]["mql"] == 2
    assert k["funnel"]["sql"] == 1
    assert k["cpl"] == D("100.00")  # 300 / 3
    assert (k["revenue"], k["orders"], k["discounts"]) == (D("600.00"), 1, D("30.00"))  # s8
    assert k["gross_profit"] == D("300.00")  # 600 * 0.50
    assert k["new_customers"] == 1  # C4 (C2's first sale to B was in January)
    assert k["cac"] == D("300.00")
    # B's customers ever: C2 (300*.5 + 400*.4 = 310), C4 (600*.5 = 300) -> 610 / 2
    assert k["ltv"] == D("305.00")
    assert k["ltv_cac"] == D("1.016667")  # 305 / 300
    assert k["romi"] == D("0.000000")  # (300 - 300) / 300
    assert k["roi"] == D("-0.090909")  # (300 - 300 - 30) / 330
    assert k["repeat_purchase_rate"] == D("0.000000")  # 0 / 1
    assert k["marketing_pct_of_sales"] == D("0.500000")  # 300 / 600
    assert k["budget"] == D("2000.00")  # 2500 allocated, then 500 moved to A
    assert k["budget_utilisation"] == D("0.150000")
    assert k["forecast_at_completion"] == D("1180.65")  # 300 / (15.5 / 61 days)
    assert k["ckpi"] == D("83.33")  # cac: 250 / 300 * 100


def test_plan_kpis_by_hand(warehouse_client: Client, scenario: dict[str, str]) -> None:
    k = warehouse.plan_kpis(
        warehouse_client, plan_id=scenario["plan"], start=MARCH, end=APRIL, now=NOW
    )
    assert (k["name"], k["status"], k["currency"]) == ("Plan 2027", "approved", "EUR")
    assert k["spend"] == D("650.50")  # 350.50 + 300.00
    assert (k["impressions"], k["clicks"]) == (19_000, 600)
    assert k["ctr"] == D("0.031579")  # 600 / 19000, not the mean of the campaigns' CTRs
    assert k["cpc"] == D("1.08")  # 650.50 / 600
    # L1 is in both campaigns and counts once (highest: sql): L1 L2 L3 L5 L7 L9 L10
    assert k["leads"] == 7
    assert k["funnel"] == {
        "visitor": 8,
        "lead": 7,
        "mql": 6,
        "sql": 3,
        "sal": 1,
        "opportunity": 1,
        "customer": 1,
    }
    assert k["cpl"] == D("92.93")  # 650.50 / 7
    assert k["revenue"] == D("2650.00")  # 2050 + 600
    assert k["orders"] == 5
    assert k["discounts"] == D("100.00")
    assert k["gross_profit"] == D("1120.00")  # 820 + 300
    assert k["average_check"] == D("530.00")  # 2650 / 5
    assert k["customers"] == 4  # C1 C2 C3 C4
    assert k["repeat_purchase_rate"] == D("0.250000")  # C1 / 4
    assert k["new_customers"] == 2  # C1 (A), C4 (B)
    assert k["cac"] == D("325.25")  # 650.50 / 2
    assert k["ltv_customers"] == 4  # C1 C6 (A), C2 C4 (B)
    assert k["ltv"] == D("397.50")  # (700 + 280 + 310 + 300) / 4
    assert k["ltv_cac"] == D("1.222137")  # 397.50 / 325.25
    assert k["romi"] == D("0.721752")  # (1120 - 650.50) / 650.50
    assert k["roi"] == D("0.492338")  # (1120 - 650.50 - 100) / 750.50
    assert k["marketing_pct_of_sales"] == D("0.245472")  # 650.50 / 2650
    assert k["budget"] == D("3500.00")  # 1500 + 2000
    assert k["budget_utilisation"] == D("0.185857")  # 650.50 / 3500
    assert k["forecast_at_completion"] == D("3187.01")  # 650.50 / (74.5 / 365 plan days)
    assert k["ckpi"] == D("110.37")  # A's five weights plus B's cac 250/300: 6.621962 / 6
    rows = {row["campaign_id"]: row for row in k["campaigns"]}
    assert set(rows) == {scenario["A"], scenario["B"]}
    assert rows[scenario["A"]]["spend"] == D("350.50")
    assert rows[scenario["A"]]["leads"] == 5
    assert rows[scenario["A"]]["ltv"] == D("490.00")
    assert rows[scenario["A"]]["ckpi"] == D("115.77")
    assert rows[scenario["B"]]["new_customers"] == 1
    assert rows[scenario["B"]]["cpl"] == D("100.00")
    assert rows[scenario["B"]]["ltv"] == D("305.00")


def test_without_period_everything_counts(
    warehouse_client: Client, scenario: dict[str, str]
) -> None:
    k = warehouse.campaign_kpis(warehouse_client, campaign_id=scenario["A"], now=NOW)
    assert k["spend"] == D("390.50")  # 350.50 + 40.00 in February
    assert k["revenue"] == D("2750.00")  # 2050 + 700 (C6, February)
    assert k["new_customers"] == 2  # C1 and C6
    assert k["funnel"]["sql"] == 3  # L7 reaches sql in April


def test_several_campaigns_in_one_query_match_each_alone(
    warehouse_client: Client, scenario: dict[str, str]
) -> None:
    ids = [scenario["A"], scenario["B"], f"unknown-{scenario['uid']}"]
    together = warehouse.campaigns_kpis(warehouse_client, campaign_ids=[*ids, ids[0]], now=NOW)
    assert list(together) == ids  # each once, in the order asked
    for campaign_id in ids:
        alone = warehouse.campaign_kpis(warehouse_client, campaign_id=campaign_id, now=NOW)
        assert together[campaign_id] == alone, campaign_id
    assert together[scenario["A"]]["spend"] == D("390.50")  # the whole history
    assert together[scenario["A"]]["ckpi"] is not None
    unknown = together[ids[2]]
    assert (unknown["spend"], unknown["plan_id"], unknown["cpl"]) == (D("0.00"), None, None)
    assert warehouse.campaigns_kpis(warehouse_client, campaign_ids=[], now=NOW) == {}


def test_funnel(warehouse_client: Client, scenario: dict[str, str]) -> None:
    f = warehouse.funnel(warehouse_client, campaign_id=scenario["A"], start=MARCH, end=APRIL)
    assert f["stages"]["lead"] == 5
    assert f["lost"] == 2
    assert f["conversions"]["mql_to_sql"] == D("0.400000")
    company = warehouse.funnel(warehouse_client, campaign_id=None, start=MARCH, end=APRIL)
    # the whole company includes this scenario (L1-L10 incl. unattributed L8) and others' data
    assert company["stages"]["lead"] >= 8


def test_empty_campaign_gives_none_not_errors(warehouse_client: Client, unique_id: str) -> None:
    k = warehouse.campaign_kpis(warehouse_client, campaign_id=f"none-{unique_id}", now=NOW)
    assert k["spend"] == D("0.00")
    assert k["leads"] == 0
    for name in ("ctr", "cpc", "cpl", "cac", "romi", "roi", "ltv", "ltv_cac", "budget", "ckpi"):
        assert k[name] is None, name
    assert k["plan_id"] is None
    assert warehouse.plan_kpis(warehouse_client, plan_id=f"none-{unique_id}")["campaigns"] == []


def test_replaying_the_batch_changes_nothing(
    warehouse_client: Client, scenario: dict[str, str]
) -> None:
    before = warehouse.plan_kpis(
        warehouse_client, plan_id=scenario["plan"], start=MARCH, end=APRIL, now=NOW
    )
    main, again = _scenario(scenario["uid"])
    warehouse.insert_events(warehouse_client, events=main + again)
    warehouse.insert_events(warehouse_client, events=list(reversed(main)))
    after = warehouse.plan_kpis(
        warehouse_client, plan_id=scenario["plan"], start=MARCH, end=APRIL, now=NOW
    )
    assert after == before


def test_duplicates_count_once_before_any_merge(warehouse_client: Client, unique_id: str) -> None:
    e = Events(unique_id)
    cid = f"dup-{unique_id}"
    spend = e(
        "spend",
        SpendRecorded(campaign_id=cid, channel="tv", amount=D("12.34"), currency="EUR"),
        at(3, 2),
    )
    warehouse_client.command("SYSTEM STOP MERGES mrm.spend")
    try:
        warehouse.insert_events(warehouse_client, events=[spend])
        warehouse.insert_events(warehouse_client, events=[spend])
        raw = warehouse_client.query(
            "SELECT count() FROM mrm.spend WHERE campaign_id = {c:String}", parameters={"c": cid}
        ).result_rows[0][0]
        assert raw == 2  # two unmerged parts hold the same event
        k = warehouse.campaign_kpis(warehouse_client, campaign_id=cid, now=NOW)
        assert k["spend"] == D("12.34")
    finally:
        warehouse_client.command("SYSTEM START MERGES mrm.spend")


def test_insert_counts_rows_per_table(warehouse_client: Client, unique_id: str) -> None:
    e = Events(unique_id)
    batch = [
        e("s", SpendRecorded(campaign_id="x", channel="tv", amount=D(1), currency="EUR"), at(3, 1)),
        e(
            "st",
            StageScheduled(stage_id="s", campaign_id="x", name="n", deadline=at(3, 2)),
            at(3, 1),
        ),
        e(
            "r",
            BudgetReallocated(
                reallocation_id="r",
                plan_id="p",
                from_campaign_id="x",
                to_campaign_id="y",
                amount=D(1),
                currency="EUR",
                from_budget=D(1),
                to_budget=D(2),
                requested_by="c",
            ),
            at(3, 1),
        ),
    ]
    counts = warehouse.insert_events(warehouse_client, events=batch)
    assert counts == {"spend": 1, "campaign_budgets": 2}


def test_kpi_targets_latest_and_alert_state(
    warehouse_client: Client, scenario: dict[str, str]
) -> None:
    uid, A = scenario["uid"], scenario["A"]
    targets = {t.target_id: t for t in warehouse.kpi_targets(warehouse_client, campaign_id=A)}
    assert set(targets) == {f"t{i}-{uid}" for i in range(1, 6)}
    t1 = targets[f"t1-{uid}"]
    assert (t1.kpi, t1.target, t1.direction, t1.weight, t1.tolerance) == (
        "cpl",
        D("80"),
        "lower_is_better",
        D("2"),
        D("0.05"),
    )

    def on_of(subject: str) -> dict[str, bool]:
        states = alerts.alert_states_of(warehouse_client, subjects=[subject]).get(subject, {})
        return {key: state.on for key, state in states.items()}

    assert on_of(A) == {}
    alerts.save_alert_states_of(
        warehouse_client, states={A: {f"t1-{uid}": True, f"t2-{uid}": False}}, now=at(3, 1)
    )
    alerts.save_alert_states_of(warehouse_client, states={A: {f"t1-{uid}": False}}, now=at(3, 2))
    alerts.save_alert_states_of(warehouse_client, states={A: {f"t2-{uid}": True}}, now=at(3, 3))
    assert on_of(A) == {f"t1-{uid}": False, f"t2-{uid}": True}


def test_alert_states_of_several_subjects_in_one_read(
    warehouse_client: Client, unique_id: str
) -> None:
    a, plan = f"A-{unique_id}", f"plan:P-{unique_id}"
    alerts.save_alert_states_of(
        warehouse_client,
        states={a: {"t1": True, "t2": False}, plan: {'reallocation:["x", "y"]': True}},
        now=at(3, 1),
    )
    alerts.save_alert_states_of(warehouse_client, states={a: {"t1": False}}, now=at(3, 2))
    alerts.save_alert_states_of(warehouse_client, states={a: {}}, now=at(3, 3))  # no rows
    version = {n: int(at(3, n).timestamp() * 1_000_000) for n in (1, 2)}
    # the version of the row that set a state names its episode (event ids derive from it)
    assert alerts.alert_states_of(warehouse_client, subjects=[a, plan, "nobody"]) == {
        a: {
            "t1": alerts.AlertState(on=False, version=version[2]),
            "t2": alerts.AlertState(on=False, version=version[1]),
        },
        plan: {'reallocation:["x", "y"]': alerts.AlertState(on=True, version=version[1])},
    }
    assert alerts.alert_states_of(warehouse_client, subjects=[]) == {}


def test_naive_period_bounds_are_rejected(warehouse_client: Client, unique_id: str) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        warehouse.funnel(warehouse_client, campaign_id=unique_id, start=dt.datetime(2027, 3, 1))
