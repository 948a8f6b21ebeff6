"""Series by brand, partner, product and region on chDB (``GET /api/v1/kpis/series`` with a
trade scope) — every value computed by hand from one fixed event set: two currencies, a sale
counting under its own brand or its campaign's, sell-in and sell-out, spend and leads of a
brand's campaigns, redelivered events.

The events live in March 2091 and every brand, partner, product and region name carries the
module's uid, so even the company-wide sales of the shared chDB engine cannot leak in.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal as D
from typing import Any

import httpx
import pytest
from clickhouse_connect.driver.client import Client
from scenario_kit import TradeScenario

from services.measurement import warehouse
from shared.events.ingest import LeadStageChanged, SpendRecorded
from shared.events.planning import CampaignPlanned
from shared.money import FxRates

pytestmark = pytest.mark.integration

Y = 2091  # 1 March 2091 is a Thursday: its ISO week starts on 26 February
START = dt.datetime(Y, 3, 1, tzinfo=dt.UTC)
END = dt.datetime(Y, 3, 15, tzinfo=dt.UTC)
RATED = FxRates(base="USD", rates={"EUR": D("1.08")})  # 1 EUR = 1.08 USD
TOKEN = "t-trade-series-viewer"


def at(month: int, day: int) -> dt.datetime:
    """A UTC timestamp in the scenario's year."""
    return dt.datetime(Y, month, day, 10, tzinfo=dt.UTC)


class Scenario(TradeScenario):
    """The fixed event set; ``acme`` / ``bolt`` / ``p1`` … are the uid-suffixed names."""

    def __init__(self, uid: str) -> None:
        super().__init__(uid)
        self.acme, self.bolt = f"Acme {uid}", f"Bolt {uid}"
        self.p1, self.p2 = self.id("P1"), self.id("P2")
        self.north, self.x1 = f"North {uid}", self.id("X1")

    def campaign(self, key: str, *, currency: str, brand: str, margin: str) -> None:
        """A March campaign."""
        data = CampaignPlanned(
            campaign_id=self.id(key),
            plan_id=self.id("plan"),
            name=f"campaign {key}",
            channel="search",
            brand=brand,
            owner="ann",
            budget=D("10000"),
            currency=currency,
            start_date=dt.date(Y, 3, 1),
            end_date=dt.date(Y, 3, 31),
            gross_margin=D(margin),
        )
        self.add(f"campaign-{key}", data, at(1, 1))

    def spend(self, name: str, campaign: str, amount: str, currency: str, when: dt.datetime):  # type: ignore[no-untyped-def]
        """A spend.recorded."""
        data = SpendRecorded(
            campaign_id=self.id(campaign), channel="search", amount=D(amount), currency=currency
        )
        self.add(name, data, when)

    def lead(self, lead: str, campaign: str, stage: str, when: dt.datetime) -> None:
        """A lead.stage_changed."""
        data = LeadStageChanged(
            lead_id=self.id(lead), campaign_id=self.id(campaign), channel="search", stage=stage
        )
        self.add(f"{lead}-{stage}", data, when)


def build(uid: str) -> Scenario:
    """Acme's campaigns A (USD, margin 0.5) and B (EUR, margin 0.4); Bolt's C (USD, margin 1).

    day  | Acme sales                          | Acme spend  | Acme leads
    -----|-------------------------------------|-------------|-----------
    3-02 | s1 A 1000 USD, disc 100, sell_out P1 | A 100 USD  | L1 (lead)
    3-03 | s2 unattributed 200 USD, sell_in P2 | A 50 USD    | L3 (mql)
    3-09 | s3 B 500 EUR, disc 50, sell_in P1    | B 200 EUR  | L4 (lead)
    3-10 | s4 C (Bolt) 300 USD, own brand Acme, sell_out P1 | — | —

    Not Acme's: s5 (C, no brand of its own: Bolt), C's spend and lead L5; L2 stays a visitor;
    s-feb and sp-feb fall on 27 February, in the first week bucket but before the period.
    """
    s = Scenario(uid)
    s.campaign("A", currency="USD", brand=s.acme, margin="0.5")
    s.campaign("B", currency="EUR", brand=s.acme, margin="0.4")
    s.campaign("C", currency="USD", brand=s.bolt, margin="1.0")
    s.spend("sp-a1", "A", "100.00", "USD", at(3, 2))
    s.spend("sp-a2", "A", "50.00", "USD", at(3, 3))
    s.spend("sp-b", "B", "200.00", "EUR", at(3, 9))
    s.spend("sp-c", "C", "300.00", "USD", at(3, 2))
    s.spend("sp-feb", "A", "999.00", "USD", at(2, 27))
    s.lead("L1", "A", "lead", at(3, 2))
    s.lead("L2", "A", "visitor", at(3, 2))
    s.lead("L3", "A", "mql", at(3, 3))
    s.lead("L4", "B", "lead", at(3, 9))
    s.lead("L5", "C", "lead", at(3, 2))
    s.sale("s1", "A", "1000.00", "USD", at(3, 2), discount_amount="100.00", partner_id=s.p1,
           region=s.north, product_id=s.x1, sale_kind="sell_out")  # fmt: skip
    s.sale("s2", None, "200.00", "USD", at(3, 3), brand=s.acme, partner_id=s.p2,
           sale_kind="sell_in")  # fmt: skip
    s.sale("s3", "B", "500.00", "EUR", at(3, 9), discount_amount="50.00", brand=s.acme,
           partner_id=s.p1, region=s.north, sale_kind="sell_in")  # fmt: skip
    s.sale("s4", "C", "300.00", "USD", at(3, 10), brand=s.acme, partner_id=s.p1,
           product_id=s.x1, sale_kind="sell_out")  # fmt: skip
    s.sale("s5", "C", "400.00", "USD", at(3, 2), partner_id=s.p2, sale_kind="sell_out")
    s.sale("s-feb", "A", "5000.00", "USD", at(2, 27), partner_id=s.p1, sale_kind="sell_out")
    return s


@pytest.fixture(scope="module")
def scenario(warehouse_client: Client) -> Scenario:
    """The event set inserted once, its sales, spend and leads once more (redelivered)."""
    s = build(uuid.uuid4().hex[:10])
    s.insert(warehouse_client, redelivered=lambda e: not e.topic.endswith("planning.v1"))
    return s


def series(client: Client, scope: str, value: str, **kw: Any) -> dict[str, Any]:
    """The 1–14 March series of ``value``."""
    return warehouse.trade_series(
        client, scope=scope, id=value, start=START, end=END, fx=RATED, **kw
    )


def by_day(answer: dict[str, Any], *names: str) -> dict[int, tuple[Any, ...]]:
    """March day → the named figures, for the days that hold any sale or spend."""
    return {
        p["start"].day: tuple(p[n] for n in names)
        for p in answer["points"]
        if p["units"] or p["spend"]
    }


def test_a_brands_sales_spend_and_leads_per_day(
    warehouse_client: Client, scenario: Scenario
) -> None:
    answer = series(warehouse_client, "brand", scenario.acme)
    assert (answer["currency"], answer["fx_rates"], answer["spend_attributed"]) == (
        "USD",
        {"EUR": D("1.08")},
        True,
    )
    assert answer["campaigns"] == [scenario.id("A"), scenario.id("B")]
    assert len(answer["points"]) == 14
    names = ("units", "revenue", "gross_profit", "discounts", "spend", "leads", "cpl", "romi")
    assert by_day(answer, *names) == {
        # s1 counted once; gross 1000 × 0.5; ROMI (500 − 100) / 100
        2: (1, D("1000.00"), D("500.00"), D("100.00"), D("100.00"), 1, D("100.00"), D(4)),
        # s2 unattributed: margin 1.0; L3 reached mql, so lead or later
        3: (1, D("200.00"), D("200.00"), D("0.00"), D("50.00"), 1, D("50.00"), D(3)),
        # s3 500 EUR = 540 USD, gross 200 EUR = 216, discount 50 EUR = 54, spend 200 EUR = 216
        9: (1, D("540.00"), D("216.00"), D("54.00"), D("216.00"), 1, D("216.00"), D(0)),
        # s4: a sale of Bolt's campaign C under its own brand Acme, at C's margin 1.0
        10: (1, D("300.00"), D("300.00"), D("0.00"), D("0.00"), 0, None, None),
    }
    quiet = answer["points"][4]  # 5 March
    assert (quiet["units"], quiet["revenue"], quiet["average_check"], quiet["by_currency"]) == (
        0,
        D("0.00"),
        None,
        {},
    )
    ninth = answer["points"][8]
    assert ninth["by_currency"] == {
        "EUR": {
            "units": 1,
            "orders": 1,
            "revenue": D("500.00"),
            "gross_profit": D("200.00"),
            "discounts": D("50.00"),
            "average_check": D("500.00"),
            "spend": D("200.00"),
            "leads": None,
            "cpl": None,
            "romi": D(0),
        }
    }


def test_a_brands_weeks_and_one_sale_kind(warehouse_client: Client, scenario: Scenario) -> None:
    weeks = series(warehouse_client, "brand", scenario.acme, bucket="week")
    # weeks from 26 Feb, 5 Mar, 12 Mar; s-feb and sp-feb (27 Feb) lie before the period
    assert [p["start"] for p in weeks["points"]] == [
        dt.date(Y, 2, 26),
        dt.date(Y, 3, 5),
        dt.date(Y, 3, 12),
    ]
    names = ("units", "revenue", "spend", "leads", "cpl", "romi", "average_check")
    assert [tuple(p[n] for n in names) for p in weeks["points"]] == [
        # s1 + s2; gross 700; spend 150; L1, L3; ROMI (700 − 150) / 150
        (2, D("1200.00"), D("150.00"), 2, D("75.00"), D("3.666667"), D("600.00")),
        # s3 540 + s4 300; gross 216 + 300; spend 216; L4; ROMI (516 − 216) / 216
        (2, D("840.00"), D("216.00"), 1, D("216.00"), D("1.388889"), D("420.00")),
        (0, D("0.00"), D("0.00"), 0, None, None, None),
    ]
    sell_in = series(warehouse_client, "brand", scenario.acme, bucket="week", sale_kind="sell_in")
    # only s2 and s3 count; spend and leads are neither sell-in nor sell-out: all of them
    assert [tuple(p[n] for n in names[:5]) for p in sell_in["points"][:2]] == [
        (1, D("200.00"), D("150.00"), 2, D("75.00")),
        (1, D("540.00"), D("216.00"), 1, D("216.00")),
    ]
    assert [p["romi"] for p in sell_in["points"][:2]] == [D("0.333333"), D(0)]  # 50/150, 0/216


def test_a_partners_series_has_no_marketing_figures(
    warehouse_client: Client, scenario: Scenario
) -> None:
    answer = series(warehouse_client, "partner", scenario.p1)
    assert (answer["spend_attributed"], answer["campaigns"]) == (False, [])
    assert by_day(answer, "units", "revenue", "discounts", "spend", "leads", "cpl", "romi") == {
        2: (1, D("1000.00"), D("100.00"), None, None, None, None),
        9: (1, D("540.00"), D("54.00"), None, None, None, None),
        10: (1, D("300.00"), D("0.00"), None, None, None, None),
    }
    sell_out = series(warehouse_client, "partner", scenario.p1, sale_kind="sell_out")
    assert by_day(sell_out, "units", "revenue") == {2: (1, D("1000.00")), 10: (1, D("300.00"))}
    in_eur = series(warehouse_client, "partner", scenario.p1, currency="EUR", bucket="week")
    # 1000 + 500 EUR (s3 as it is) → 1000 / 1.08 + 500 = 925.93 + 500; then s4 300 / 1.08
    assert [p["revenue"] for p in in_eur["points"]] == [
        D("925.93"),
        D("777.78"),  # 500 + 277.78
        D("0.00"),
    ]


def test_products_regions_and_unknown_values(warehouse_client: Client, scenario: Scenario) -> None:
    product = series(warehouse_client, "product", scenario.x1)
    assert by_day(product, "units", "revenue", "gross_profit") == {
        2: (1, D("1000.00"), D("500.00")),
        10: (1, D("300.00"), D("300.00")),
    }
    region = series(warehouse_client, "region", scenario.north, bucket="week")
    assert [p["revenue"] for p in region["points"]] == [D("1000.00"), D("540.00"), D("0.00")]
    nobody = series(warehouse_client, "brand", f"Nobody {scenario.uid}")
    assert nobody["campaigns"] == []
    assert {(p["units"], p["spend"], p["leads"], p["romi"]) for p in nobody["points"]} == {
        (0, D("0.00"), 0, None)
    }


def test_bad_arguments(warehouse_client: Client) -> None:
    with pytest.raises(ValueError, match=r"^scope: "):
        series(warehouse_client, "outlet", "O1")
    with pytest.raises(ValueError, match=r"^sale_kind: "):
        series(warehouse_client, "brand", "Acme", sale_kind="resale")
    with pytest.raises(ValueError, match=r"^bucket: "):
        series(warehouse_client, "brand", "Acme", bucket="month")


@pytest.fixture
def measurement(measurement_api) -> httpx.Client:  # type: ignore[no-untyped-def]
    return measurement_api(bearer=TOKEN, timeout=20, currency="USD", fx_rates={"EUR": D("1.08")})


def test_the_route(measurement: httpx.Client, scenario: Scenario) -> None:
    period = {"from": START.isoformat(), "to": END.isoformat(), "bucket": "week"}
    response = measurement.get(
        "/api/v1/kpis/series", params={**period, "scope": "brand", "id": scenario.acme}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["scope"], body["id"], body["sale_kind"], body["currency"]) == (
        "brand",
        scenario.acme,
        None,
        "USD",
    )
    first = body["points"][0]
    assert (first["start"], first["revenue"], first["spend"], first["leads"], first["romi"]) == (
        "2091-02-26",
        "1200.00",
        "150.00",
        2,
        "3.666667",
    )
    partner = measurement.get(
        "/api/v1/kpis/series",
        params={**period, "scope": "partner", "id": scenario.p1, "sale_kind": "sell_in"},
    ).json()
    assert [(p["units"], p["revenue"], p["spend"]) for p in partner["points"]] == [
        (0, "0.00", None),
        (1, "540.00", None),
        (0, "0.00", None),
    ]
    for params, field in (
        ({"scope": "brand"}, "id"),
        ({"scope": "shop", "id": "x"}, "scope"),
        ({"scope": "campaign", "id": "x", "sale_kind": "sell_in"}, "sale_kind"),
        ({"scope": "brand", "id": "x", "sale_kind": "resale"}, "sale_kind"),
        ({"scope": "brand", "id": "x", "currency": "GBP"}, "currency"),
    ):
        response = measurement.get("/api/v1/kpis/series", params={**period, **params})
        assert response.status_code == 422, (params, response.text)
        assert response.json()["detail"][0]["loc"] == ["query", field], params
