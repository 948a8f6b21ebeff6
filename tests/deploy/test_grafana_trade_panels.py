"""The Marketing KPIs dashboard's brand, partner, segment and model panels, expanded as Grafana
does (``test_grafana_clickhouse`` models the expansion) and run on chDB against a small hand-made
event set: every figure checked here is computed by hand.

The brand, partner and segment panels read every sale of the selected currency in the time
range, so the event set lives in June 2089, a month no other test writes to; the model panel
reads the campaigns of its own plan. Redeliveries are inserted as parts of their own with merges
stopped, so a query that forgot FINAL would double count.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal as D
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from test_grafana_clickhouse import (
    DAY_S,
    TimeRange,
    Variable,
    grafana_sql,
    load_dashboard,
    panel_sql,
    variable_sql,
)

from services.measurement import rfm, warehouse
from services.measurement.warehouse import StoredEvent
from services.measurement.warehouse.modelled import save_model
from shared.events import EventData, new_envelope
from shared.events.ingest import LeadStageChanged, SaleCompleted, SpendRecorded
from shared.events.kpi import CampaignModelled, ModelBand
from shared.events.planning import CampaignPlanned, PlanCreated

pytestmark = pytest.mark.integration

Y = 2089
JUNE = TimeRange(
    dt.datetime(Y, 6, 1, tzinfo=dt.UTC),
    dt.datetime(Y, 6, 30, 23, 59, 59, 999_000, tzinfo=dt.UTC),
    interval_s=DAY_S,
)
RAW_TABLES = ("spend", "lead_events", "sales", "campaign_models")


def at(month: int, day: int, year: int = Y) -> dt.datetime:
    """A UTC timestamp."""
    return dt.datetime(year, month, day, 10, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Trade:
    """The ids of the event set (uid-suffixed)."""

    uid: str

    def __getattr__(self, name: str) -> str:
        return f"{name}-{self.uid}"


def build(t: Trade) -> tuple[list[StoredEvent], list[StoredEvent]]:
    """(events, redeliveries). Plan TP (EUR): T1 (brand acme, search, margin 0.5, targets
    rfm:champions) and T2 (brand bolt, retail, margin 1.0, no target).

    sale | campaign | brand      | kind     | partner | customer | EUR  | day
    t1   | T1       | acme (T1's)| sell_out | P1      | K1       | 1000 | 2
    t2   | T1       | acme       | sell_in  | P2      | K2       |  200 | 2
    t3   | —        | bolt (own) | sell_out | P1      | K1       |  300 | 5  (channel retail)
    t4   | T2       | bolt       | sell_in  | P2      | K3       |  400 | 9  (discount 40)
    t5   | —        | bolt       | sell_out | P1      | K4       |  150 USD: another currency
    t6   | T1       | acme       | sell_out | P1      | K2       |  100 | 20
    spend: T1 100 (search, day 2), T2 50 (retail, day 3); t1 and T1's spend delivered twice.
    """
    built: dict[str, StoredEvent] = {}
    events: list[StoredEvent] = []

    def add(name: str, data: EventData, when: dt.datetime) -> None:
        event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"grafana-trade/{t.uid}/{name}")
        envelope = new_envelope(data, source="test", event_id=event_id, occurred_at=when)
        event = StoredEvent(
            envelope=envelope, data=data, topic=data.topic, partition=0, offset=len(events)
        )
        built[name] = event
        events.append(event)

    plan = PlanCreated(
        plan_id=t.TP,
        name=f"Trade plan {t.uid}",
        period_start=dt.date(Y, 1, 1),
        period_end=dt.date(Y, 12, 31),
        currency="EUR",
        owner="cmo",
    )
    add("plan", plan, at(1, 1))
    for cid, brand, channel, margin in (
        (t.T1, t.acme, "search", "0.5"),
        (t.T2, t.bolt, "retail", "1.0"),
    ):
        campaign = CampaignPlanned(
            campaign_id=cid,
            plan_id=t.TP,
            name=f"Campaign {cid}",
            channel=channel,
            brand=brand,
            owner="ann",
            budget=D("1000"),
            currency="EUR",
            start_date=dt.date(Y, 6, 1),
            end_date=dt.date(Y, 6, 30),
            gross_margin=D(margin),
            status="active",
            target_segment="rfm:champions" if cid == t.T1 else None,
        )
        add(cid, campaign, at(1, 2))
    add("sp1", SpendRecorded(campaign_id=t.T1, channel="search", amount=D(100), currency="EUR"),
        at(6, 2))  # fmt: skip
    add("sp2", SpendRecorded(campaign_id=t.T2, channel="retail", amount=D(50), currency="EUR"),
        at(6, 3))  # fmt: skip
    for lead, stage, when in (
        ("L1", "lead", at(6, 2)),
        ("L2", "visitor", at(6, 2)),
        ("L3", "mql", at(6, 4)),
        ("L4", "lead", at(5, 1, Y - 1)),  # a year earlier: still "so far"
    ):
        data = LeadStageChanged(
            lead_id=getattr(t, lead), campaign_id=t.T1, channel="search", stage=stage
        )
        add(f"{lead}-{stage}", data, when)
    for name, cid, brand, kind, partner, customer, amount, day, extra in (
        ("t1", t.T1, None, "sell_out", t.P1, t.K1, "1000", 2, {}),
        ("t2", t.T1, None, "sell_in", t.P2, t.K2, "200", 2, {}),
        ("t3", None, t.bolt, "sell_out", t.P1, t.K1, "300", 5, {"channel": "retail"}),
        ("t4", t.T2, None, "sell_in", t.P2, t.K3, "400", 9, {"discount_amount": D(40)}),
        ("t5", None, t.bolt, "sell_out", t.P1, t.K4, "150", 9, {"currency": "USD"}),
        ("t6", t.T1, None, "sell_out", t.P1, t.K2, "100", 20, {}),
    ):
        sale = SaleCompleted(
            order_id=getattr(t, name),
            customer_id=customer,
            campaign_id=cid,
            amount=D(amount),
            currency=extra.pop("currency", "EUR"),
            brand=brand,
            sale_kind=kind,
            partner_id=partner,
            **extra,
        )
        add(name, sale, at(6, day))
    return events, [built["t1"], built["sp1"], built["L1-lead"]]


MODEL = CampaignModelled(
    campaign_id="set per scenario",
    plan_id=None,
    as_of=at(6, 1),
    currency="EUR",
    budget=D("1000"),
    match="channel_brand",
    peers=4,
    figures={
        "leads": ModelBand(p10=D(2), p50=D(4), p90=D("6.5")),
        "customers": ModelBand(p10=D(1), p50=D(2), p90=D(3)),
        "revenue": ModelBand(p10=D("800.50"), p50=D(1200), p90=D(1600)),
        "cpl": ModelBand(p10=None, p50=D(250), p90=None),
    },
)


@pytest.fixture(scope="module")
def trade(warehouse_client: Client) -> Iterator[Trade]:
    """The event set and T1's model, each written twice (the model first with other figures,
    then again as a redelivery of the final one), merges stopped."""
    t = Trade(uuid.uuid4().hex[:10])
    events, redelivered = build(t)
    for table in RAW_TABLES:
        warehouse_client.command(f"SYSTEM STOP MERGES mrm.{table}")
    try:
        warehouse.insert_events(warehouse_client, events=events)
        warehouse.insert_events(warehouse_client, events=redelivered)
        model = MODEL.model_copy(update={"campaign_id": t.T1, "plan_id": t.TP})
        event_id = uuid.uuid4()
        early = model.model_copy(update={"figures": {"leads": ModelBand(p50=D(99))}})
        save_model(warehouse_client, event=early, event_id=event_id, now=at(6, 1))
        for _ in range(2):
            save_model(warehouse_client, event=model, event_id=event_id, now=at(6, 2))
        yield t
    finally:
        for table in RAW_TABLES:
            warehouse_client.command(f"SYSTEM START MERGES mrm.{table}")


def variables(client: Client, t: Trade, currency: str = "EUR") -> dict[str, Variable]:
    """Plan TP, every campaign and channel, the given currency."""
    dashboard = load_dashboard()
    plan = Variable("plan", t.TP)
    options = {
        name: [
            str(row[0])
            for row in client.query(
                grafana_sql(variable_sql(dashboard, name), {"plan": plan}, JUNE)
            ).result_rows
        ]
        for name in ("campaign", "channel", "currency")
    }
    assert options["currency"][0] == "EUR"  # the plan's currency first
    return {
        "plan": plan,
        "campaign": Variable("campaign", ["$__all"], options=options["campaign"]),
        "channel": Variable("channel", ["$__all"], options=options["channel"]),
        "currency": Variable("currency", currency),
    }


def rows(client: Client, title: str, chosen: dict[str, Variable]) -> list[dict[str, Any]]:
    """The panel's rows for June under the chosen variables."""
    sql = grafana_sql(panel_sql(load_dashboard(), title), chosen, JUNE)
    return list(client.query(sql).named_results())


def test_sales_by_brand(warehouse_client: Client, trade: Trade) -> None:
    found = rows(warehouse_client, "Sales by brand", variables(warehouse_client, trade))
    names = ("sell_in", "sell_out", "revenue", "orders", "discounts", "gross_profit", "spend")
    assert {r["brand"]: tuple(r[n] for n in names) for r in found} == {
        # t2 | t1 (once) + t6; gross (1300) × 0.5; T1's spend 100 (once)
        trade.acme: (D(200), D(1100), D(1300), 3, D(0), D(650), D(100)),
        # t4 | t3 (own brand, unattributed: margin 1); T2's spend 50; t5 is in USD
        trade.bolt: (D(400), D(300), D(700), 2, D(40), D(700), D(50)),
    }
    assert [r["brand"] for r in found] == [trade.acme, trade.bolt]  # by revenue
    assert [r["romi"] for r in found] == pytest.approx([5.5, 13.0])  # (650-100)/100, (700-50)/50
    in_usd = rows(warehouse_client, "Sales by brand", variables(warehouse_client, trade, "USD"))
    assert [(r["brand"], r["sell_out"], r["spend"], r["romi"]) for r in in_usd] == [
        (trade.bolt, D(150), D(0), None)  # no USD spend: ROMI undefined
    ]


def test_sales_by_brand_over_time(warehouse_client: Client, trade: Trade) -> None:
    found = rows(warehouse_client, "Sales by brand over time", variables(warehouse_client, trade))
    day = {dt.datetime(Y, 6, d): d for d in range(1, 31)}
    assert [(day[_naive(r["time"])], r["brand"], r["revenue"]) for r in found] == [
        (2, f"{trade.acme} · sell-in", D(200)),
        (2, f"{trade.acme} · sell-out", D(1000)),
        (5, f"{trade.bolt} · sell-out", D(300)),
        (9, f"{trade.bolt} · sell-in", D(400)),
        (20, f"{trade.acme} · sell-out", D(100)),
    ]


def test_sales_by_partner(warehouse_client: Client, trade: Trade) -> None:
    chosen = variables(warehouse_client, trade)
    found = rows(warehouse_client, "Sales by partner", chosen)
    names = ("sell_in_orders", "sell_in", "sell_out_orders", "sell_out", "discounts", "customers")
    assert [(r["partner"], *(r[n] for n in names)) for r in found] == [
        (trade.P1, 0, D(0), 3, D(1400), D(0), 2),  # t1 t3 t6: K1 twice, K2
        (trade.P2, 2, D(600), 0, D(0), D(40), 2),  # t2 t4
    ]
    series = rows(warehouse_client, "Sales by partner over time", chosen)
    assert [(r["partner"], r["revenue"]) for r in series] == [
        (f"{trade.P1} · sell-out", D(1000)),
        (f"{trade.P2} · sell-in", D(200)),
        (f"{trade.P1} · sell-out", D(300)),
        (f"{trade.P2} · sell-in", D(400)),
        (f"{trade.P1} · sell-out", D(100)),
    ]


def test_brands_and_channels_side_by_side(warehouse_client: Client, trade: Trade) -> None:
    found = rows(
        warehouse_client, "Brands and channels side by side", variables(warehouse_client, trade)
    )
    names = ("revenue", "gross_profit", "spend")
    by = {(r["dimension"], r["value"]): tuple(r[n] for n in names) for r in found}
    assert by == {
        ("brand", trade.acme): (D(1300), D(650), D(100)),
        ("brand", trade.bolt): (D(700), D(700), D(50)),
        # the same sales by channel: T1's (search) and t3's own + T2's (retail)
        ("channel", "search"): (D(1300), D(650), D(100)),
        ("channel", "retail"): (D(700), D(700), D(50)),
    }
    pct = {(r["dimension"], r["value"]): r["marketing_pct_of_sales"] for r in found}
    assert pct[("channel", "retail")] == pytest.approx(50 / 700)
    assert [r["dimension"] for r in found] == ["brand", "brand", "channel", "channel"]


def test_rfm_segment_sizes(warehouse_client: Client, trade: Trade) -> None:
    found = rows(warehouse_client, "RFM segment sizes", variables(warehouse_client, trade))
    # EUR customers of June: K1 last 5th, 2 orders, 1300; K2 last 20th, 2 orders, 300;
    # K3 last 9th, 1 order, 400. Ranked worst first (n = 3, score 1 + 5·worse // 3):
    # R: K1 1, K3 2, K2 4; F: K3 1, K1 and K2 tie at 2; M: K2 1, K3 2, K1 4
    # → K1 (1, 2, 4) hibernating, K3 (2, 1, 2) hibernating, K2 (4, 2, 1) promising
    assert [(r["segment"], r["customers"]) for r in found] == [
        ("champions", 0),
        ("loyal", 0),
        ("new", 0),
        ("promising", 1),
        ("at_risk", 0),
        ("hibernating", 2),
        ("need_attention", 0),
    ]
    assert [r["segment"] for r in found] == list(rfm.SEGMENTS)
    # the same customers through the API's scoring
    scored = rfm.score(
        [
            rfm.CustomerSales("K1", at(6, 5), 2, D(1300)),
            rfm.CustomerSales("K2", at(6, 20), 2, D(300)),
            rfm.CustomerSales("K3", at(6, 9), 1, D(400)),
        ],
        as_of=dt.date(Y, 6, 30),
    )
    assert rfm.summary(scored)["segments"] == {r["segment"]: r["customers"] for r in found}


def test_modelled_vs_actual(warehouse_client: Client, trade: Trade) -> None:
    raw = warehouse_client.query(
        "SELECT count() FROM mrm.campaign_models WHERE campaign_id = {c:String}",
        parameters={"c": trade.T1},
    ).result_rows[0][0]
    assert raw == 9  # 1 early row + 4 figures twice, merges stopped
    t1, t2 = rows(
        warehouse_client, "Modelled vs actual per campaign", variables(warehouse_client, trade)
    )
    assert (t1["campaign"], t1["match"], t1["peers"]) == (
        f"Campaign {trade.T1}",
        "channel_brand",
        4,
    )
    bands = ("leads_p10", "leads_p50", "leads_p90", "leads")
    # the latest model (P50 4, not the early 99); leads so far: L1, L3 and last year's L4
    assert tuple(t1[n] for n in bands) == (D(2), D(4), D("6.5"), 3)
    customers = ("customers_p10", "customers_p50", "customers_p90", "customers")
    assert tuple(t1[n] for n in customers) == (D(1), D(2), D(3), 2)  # K1, K2
    revenue = ("revenue_p10", "revenue_p50", "revenue_p90", "revenue")
    assert tuple(t1[n] for n in revenue) == (D("800.50"), D(1200), D(1600), D(1300))
    # T2 has no model yet: empty bands, its actuals all the same
    assert (t2["match"], t2["peers"], t2["leads_p50"], t2["revenue_p90"]) == (None,) * 4
    assert (t2["leads"], t2["customers"], t2["revenue"]) == (0, 1, D(400))


def test_segment_effectiveness(warehouse_client: Client, trade: Trade) -> None:
    found = rows(warehouse_client, "Segment effectiveness", variables(warehouse_client, trade))
    names = ("campaigns", "spend", "leads", "new_customers", "revenue", "gross_profit")
    assert [(r["target_segment"], *(r[n] for n in names)) for r in found] == [
        # T1: spend 100 (once); leads L1 and L3 (L2 a visitor, L4 last year); K1 and K2 first
        # bought on T1 (t1, t2); t1 (once) + t2 + t6 = 1300 at margin 0.5
        ("rfm:champions", 1, D(100), 2, 2, D(1300), D(650)),
        # T2: spend 50, no leads, K3 first bought on T2 (t4 400 at margin 1); t3 is no campaign's
        ("(no target)", 1, D(50), 0, 1, D(400), D(400)),
    ]
    assert [(r["cpl"], r["cac"]) for r in found] == [(50.0, 50.0), (None, 50.0)]
    assert [r["romi"] for r in found] == pytest.approx([5.5, 7.0])  # (650-100)/100, (400-50)/50


def _naive(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
