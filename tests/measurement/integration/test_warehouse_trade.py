"""Sales by brand, partner, product, region, outlet and channel on chDB — sell-in and sell-out,
two currencies, spend of campaigns by brand and channel — every value computed by hand from one
fixed event set.

The session shares one chDB engine: the events live in March 2096 (no other test uses that
year), so a window on March 2096 sees only them and even company-wide rows are exact.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal as D
from typing import Any

import httpx
import pytest
from clickhouse_connect.driver.client import Client
from scenario_kit import TradeScenario, on_topics

from services.measurement import warehouse
from shared.events.ingest import SpendRecorded
from shared.events.planning import CampaignPlanned
from shared.money import FxRates

pytestmark = pytest.mark.integration

Y = 2096
MARCH = dt.datetime(Y, 3, 1, tzinfo=dt.UTC)
APRIL = dt.datetime(Y, 4, 1, tzinfo=dt.UTC)
RATED = FxRates(base="USD", rates={"EUR": D("1.08")})  # 1 EUR = 1.08 USD
UNRATED = FxRates(base="USD", rates={})
TOKEN = "t-trade-viewer"


def at(month: int, day: int) -> dt.datetime:
    """A UTC timestamp in the scenario's year."""
    return dt.datetime(Y, month, day, 10, tzinfo=dt.UTC)


class Scenario(TradeScenario):
    """Builds the fixed event set (event ids derive from names, so a replay is a duplicate)."""

    def campaign(self, key: str, *, currency: str, channel: str, margin: str, brand=None):  # type: ignore[no-untyped-def]
        """A March campaign."""
        data = CampaignPlanned(
            campaign_id=self.id(key),
            plan_id=self.id(f"plan-{currency}"),
            name=f"campaign {key}",
            channel=channel,
            brand=brand,
            owner="ann",
            budget=D("10000"),
            currency=currency,
            start_date=dt.date(Y, 3, 1),
            end_date=dt.date(Y, 3, 31),
            gross_margin=D(margin),
        )
        self.add(f"campaign-{key}", data, at(1, 1))

    def spend(self, name: str, campaign: str, channel: str, amount: str, currency: str, when):  # type: ignore[no-untyped-def]
        """A spend.recorded."""
        data = SpendRecorded(
            campaign_id=self.id(campaign), channel=channel, amount=D(amount), currency=currency
        )
        self.add(name, data, when)


def build(uid: str) -> Scenario:
    """Campaigns A (USD, search, brand Acme, margin 0.5), B (EUR, retail, brand Bolt, margin
    0.4) and C (USD, retail, no brand, margin 1.0); spend and six March sales (one of them
    unattributed), a February sale and spend outside the window."""
    s = Scenario(uid)
    s.campaign("A", currency="USD", channel="search", margin="0.5", brand="Acme")
    s.campaign("B", currency="EUR", channel="retail", margin="0.4", brand="Bolt")
    s.campaign("C", currency="USD", channel="retail", margin="1.0")
    s.spend("sp-a", "A", "search", "1000.00", "USD", at(3, 2))
    s.spend("sp-a2", "A", "retail", "200.00", "USD", at(3, 3))  # A spends in retail too
    s.spend("sp-b", "B", "retail", "500.00", "EUR", at(3, 2))
    s.spend("sp-c", "C", "retail", "300.00", "USD", at(3, 2))
    s.spend("sp-feb", "A", "search", "999.00", "USD", at(2, 10))
    s.sale("s1", "A", "1000.00", "USD", at(3, 5), discount_amount="100.00", partner_id="P1",
           region="North", product_id="X1", brand="Acme", sale_kind="sell_out",
           outlet="O1")  # fmt: skip
    # no brand of its own: A's (Acme)
    s.sale("s2", "A", "400.00", "USD", at(3, 6), channel="retail", partner_id="P2",
           region="South", product_id="X1", sale_kind="sell_in")  # fmt: skip
    s.sale("s3", "B", "500.00", "EUR", at(3, 7), discount_amount="50.00", partner_id="P1",
           region="North", product_id="Y1", brand="Bolt", sale_kind="sell_out",
           outlet="O1")  # fmt: skip
    # unattributed: margin 1.0, no campaign's brand or channel to fall back on
    s.sale("s4", None, "200.00", "USD", at(3, 8), channel="web", region="South",
           product_id="Y1", brand="Bolt", sale_kind="sell_out", outlet="O2")  # fmt: skip
    # C has no brand: counts under none
    s.sale("s5", "C", "300.00", "USD", at(3, 9), discount_amount="30.00", partner_id="P2",
           region="North", product_id="Z1", sale_kind="sell_in")  # fmt: skip
    s.sale("s6", "B", "100.00", "EUR", at(3, 10), channel="retail", partner_id="P2",
           region="South", product_id="Y1", brand="Bolt", sale_kind="sell_in")  # fmt: skip
    s.sale("s-feb", "A", "5000.00", "USD", at(2, 10), brand="Acme", sale_kind="sell_out")
    return s


@pytest.fixture(scope="module")
def scenario(warehouse_client: Client) -> Scenario:
    """The event set inserted once per module, and its sales once more (redelivered)."""
    s = build(uuid.uuid4().hex[:10])
    s.insert(warehouse_client, redelivered=on_topics("mrm.sales.v1"))
    return s


def sales_by(client: Client, by: str, fx: FxRates = RATED, **kw: Any) -> dict[str, Any]:
    """The March sales by ``by``."""
    return warehouse.sales_by(client, by=by, fx=fx, start=MARCH, end=APRIL, **kw)


def rows(answer: dict[str, Any], *names: str) -> dict[str | None, dict[str, Any]]:
    """value → the named fields of its row."""
    return {r["value"]: {n: r[n] for n in names} for r in answer["rows"]}


NONE_MARKETING = {"spend": None, "romi": None, "roi": None, "marketing_pct_of_sales": None}


def test_brands_in_two_currencies_with_their_campaigns_spend(
    warehouse_client: Client, scenario: Scenario
) -> None:
    # by hand, 1 EUR = 1.08 USD; gross profit: A's sales at 0.5, B's at 0.4, C's and the
    # unattributed one at 1.0
    # Acme: s1 1000 + s2 400 (no brand, A's) USD; gross 700; spend A 1000 + 200 = 1200
    # Bolt: s3 500 + s6 100 EUR (648) + s4 200 USD = 848; gross 240 EUR (259.20) + 200 = 459.20;
    #       discounts 50 EUR = 54; spend B 500 EUR = 540
    # none: s5 300 USD (C has no brand); gross 300; discounts 30; spend C 300
    answer = sales_by(warehouse_client, "brand")
    assert (answer["by"], answer["sale_kind"], answer["spend_attributed"]) == ("brand", None, True)
    assert (answer["currency"], answer["fx_rates"], answer["missing_rates"]) == (
        "USD",
        {"EUR": D("1.08")},
        [],
    )
    fields = (*warehouse.trade.FIGURES, "revenue_share")
    assert [r["value"] for r in answer["rows"]] == ["Acme", "Bolt", None]  # none listed last
    assert rows(answer, *fields) == {
        "Acme": {
            "orders": 2,
            "revenue": D("1400.00"),
            "discounts": D("100.00"),
            "average_check": D("700.00"),
            "gross_profit": D("700.00"),
            "spend": D("1200.00"),
            "romi": D("-0.416667"),  # (700 - 1200) / 1200
            "roi": D("-0.461538"),  # (700 - 1200 - 100) / (1200 + 100)
            "marketing_pct_of_sales": D("0.857143"),  # 1200 / 1400
            "revenue_share": D("0.549451"),  # 1400 / 2548
        },
        "Bolt": {
            "orders": 3,
            "revenue": D("848.00"),
            "discounts": D("54.00"),
            "average_check": D("282.67"),
            "gross_profit": D("459.20"),
            "spend": D("540.00"),
            "romi": D("-0.149630"),  # (459.20 - 540) / 540
            "roi": D("-0.226936"),  # (459.20 - 540 - 54) / (540 + 54)
            "marketing_pct_of_sales": D("0.636792"),
            "revenue_share": D("0.332810"),
        },
        None: {
            "orders": 1,
            "revenue": D("300.00"),
            "discounts": D("30.00"),
            "average_check": D("300.00"),
            "gross_profit": D("300.00"),
            "spend": D("300.00"),
            "romi": D("0.000000"),
            "roi": D("-0.090909"),  # -30 / 330
            "marketing_pct_of_sales": D("1.000000"),
            "revenue_share": D("0.117739"),
        },
    }
    bolt = next(r for r in answer["rows"] if r["value"] == "Bolt")
    assert bolt["by_currency"]["EUR"] == {
        "orders": 2,
        "revenue": D("600.00"),
        "discounts": D("50.00"),
        "average_check": D("300.00"),
        "gross_profit": D("240.00"),
        "spend": D("500.00"),
        "romi": D("-0.520000"),
        "roi": D("-0.563636"),  # (240 - 500 - 50) / 550
        "marketing_pct_of_sales": D("0.833333"),
        "revenue_share": D("1.000000"),  # the only EUR revenue
    }
    assert {k: bolt["by_currency"]["USD"][k] for k in ("orders", "revenue", "spend", "romi")} == {
        "orders": 1,
        "revenue": D("200.00"),
        "spend": D("0.00"),
        "romi": None,  # no USD spend on Bolt
    }
    assert bolt["by_currency"]["USD"]["revenue_share"] == D("0.105263")  # 200 / 1900 USD
    total = answer["total"]
    assert {k: total[k] for k in fields} == {
        "orders": 6,
        "revenue": D("2548.00"),
        "discounts": D("184.00"),
        "average_check": D("424.67"),
        "gross_profit": D("1459.20"),
        "spend": D("2040.00"),  # February's left out
        "romi": D("-0.284706"),
        "roi": D("-0.343885"),
        "marketing_pct_of_sales": D("0.800628"),
        "revenue_share": D("1.000000"),
    }
    assert sorted(total["by_currency"]) == ["EUR", "USD"]
    assert total["by_currency"]["USD"]["revenue"] == D("1900.00")


def test_channels_read_side_by_side_with_brands(
    warehouse_client: Client, scenario: Scenario
) -> None:
    # search: s1 (no channel: A's); spend A in search 1000
    # retail: s2 400 USD, s3 500 EUR (B's channel), s5 300 USD (C's), s6 100 EUR = 1348;
    #         gross 200 + 300 + 240 EUR = 759.20; spend A 200 + C 300 + B 500 EUR = 1040
    # web: the unattributed s4, no spend
    answer = sales_by(warehouse_client, "channel")
    brands = sales_by(warehouse_client, "brand")
    assert answer["rows"][0].keys() == brands["rows"][0].keys()
    assert answer["total"] == brands["total"]  # the same sales and the same spend in all
    assert rows(answer, "orders", "revenue", "gross_profit", "spend", "romi", "revenue_share") == {
        "retail": {
            "orders": 4,
            "revenue": D("1348.00"),
            "gross_profit": D("759.20"),
            "spend": D("1040.00"),
            "romi": D("-0.270000"),
            "revenue_share": D("0.529042"),
        },
        "search": {
            "orders": 1,
            "revenue": D("1000.00"),
            "gross_profit": D("500.00"),
            "spend": D("1000.00"),
            "romi": D("-0.500000"),
            "revenue_share": D("0.392465"),
        },
        "web": {
            "orders": 1,
            "revenue": D("200.00"),
            "gross_profit": D("200.00"),
            "spend": D("0.00"),
            "romi": None,
            "revenue_share": D("0.078493"),
        },
    }


def test_partners_of_sell_out_have_no_spend_of_their_own(
    warehouse_client: Client, scenario: Scenario
) -> None:
    # sell-out: s1 (P1, 1000 USD), s3 (P1, 500 EUR = 540), s4 (no partner, 200 USD)
    answer = sales_by(warehouse_client, "partner", sale_kind="sell_out")
    assert (answer["sale_kind"], answer["spend_attributed"]) == ("sell_out", False)
    assert rows(answer, "orders", "revenue", "discounts", "average_check", "revenue_share") == {
        "P1": {
            "orders": 2,
            "revenue": D("1540.00"),
            "discounts": D("154.00"),
            "average_check": D("770.00"),
            "revenue_share": D("0.885057"),
        },
        None: {
            "orders": 1,
            "revenue": D("200.00"),
            "discounts": D("0.00"),
            "average_check": D("200.00"),
            "revenue_share": D("0.114943"),
        },
    }
    for row in (*answer["rows"], answer["total"]):
        assert {k: row[k] for k in NONE_MARKETING} == NONE_MARKETING
        for share in row["by_currency"].values():
            assert {k: share[k] for k in NONE_MARKETING} == NONE_MARKETING


def test_regions_products_and_outlets(warehouse_client: Client, scenario: Scenario) -> None:
    # sell-in: s2 (South 400 USD), s5 (North 300 USD), s6 (South 100 EUR = 108)
    regions = sales_by(warehouse_client, "region", sale_kind="sell_in")
    assert rows(regions, "orders", "revenue", "average_check", "revenue_share") == {
        "North": {
            "orders": 1,
            "revenue": D("300.00"),
            "average_check": D("300.00"),
            "revenue_share": D("0.371287"),
        },
        "South": {
            "orders": 2,
            "revenue": D("508.00"),
            "average_check": D("254.00"),
            "revenue_share": D("0.628713"),
        },
    }
    products = sales_by(warehouse_client, "product")
    assert rows(products, "orders", "revenue") == {
        "X1": {"orders": 2, "revenue": D("1400.00")},
        "Y1": {"orders": 3, "revenue": D("848.00")},  # s3 540 + s4 200 + s6 108
        "Z1": {"orders": 1, "revenue": D("300.00")},
    }
    outlets = sales_by(warehouse_client, "outlet", sale_kind="sell_out")
    assert rows(outlets, "orders", "revenue") == {
        "O1": {"orders": 2, "revenue": D("1540.00")},
        "O2": {"orders": 1, "revenue": D("200.00")},
    }


def test_without_a_rate_nothing_is_added_across_currencies(
    warehouse_client: Client, scenario: Scenario
) -> None:
    answer = sales_by(warehouse_client, "brand", fx=UNRATED)
    assert (answer["currency"], answer["fx_rates"], answer["missing_rates"]) == (
        "USD",
        {},
        ["EUR"],
    )
    got = rows(answer, "orders", "revenue", "spend", "romi", "revenue_share")
    # Acme is all USD; its share of a total with a EUR part is unknown
    assert got["Acme"] == {
        "orders": 2,
        "revenue": D("1400.00"),
        "spend": D("1200.00"),
        "romi": D("-0.416667"),
        "revenue_share": None,
    }
    assert got["Bolt"] == {
        "orders": 3,
        "revenue": None,
        "spend": None,
        "romi": None,
        "revenue_share": None,
    }
    bolt = next(r for r in answer["rows"] if r["value"] == "Bolt")
    assert (bolt["by_currency"]["EUR"]["revenue"], bolt["by_currency"]["EUR"]["spend"]) == (
        D("600.00"),
        D("500.00"),
    )
    assert answer["total"]["revenue"] is None
    assert answer["total"]["by_currency"]["USD"]["revenue"] == D("1900.00")


def test_reported_in_another_currency(warehouse_client: Client, scenario: Scenario) -> None:
    answer = sales_by(warehouse_client, "channel", currency="EUR", sale_kind="sell_in")
    # sell-in: s2 400 USD (retail), s5 300 USD (retail), s6 100 EUR: 700 / 1.08 + 100
    assert answer["currency"] == "EUR"
    assert rows(answer, "orders", "revenue") == {
        "retail": {"orders": 3, "revenue": D("748.15")},
        "search": {"orders": 0, "revenue": D("0.00")},  # spend only
    }


def test_unknown_dimension_or_sale_kind(warehouse_client: Client) -> None:
    with pytest.raises(ValueError, match=r"^by: "):
        sales_by(warehouse_client, "colour")
    with pytest.raises(ValueError, match=r"^sale_kind: "):
        sales_by(warehouse_client, "brand", sale_kind="resale")


@pytest.fixture
def measurement(measurement_api) -> httpx.Client:  # type: ignore[no-untyped-def]
    return measurement_api(bearer=TOKEN, timeout=20, currency="USD", fx_rates={"EUR": D("1.08")})


def test_the_route(measurement: httpx.Client, scenario: Scenario) -> None:
    march = {"from": MARCH.isoformat(), "to": APRIL.isoformat()}
    response = measurement.get("/api/v1/kpis/sales", params={**march, "by": "brand"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["by"], body["currency"], body["fx_rates"]) == ("brand", "USD", {"EUR": "1.08"})
    acme = body["rows"][0]
    assert (acme["value"], acme["revenue"], acme["romi"], acme["revenue_share"]) == (
        "Acme",
        "1400.00",
        "-0.416667",
        "0.549451",
    )
    partners = measurement.get(
        "/api/v1/kpis/sales", params={**march, "by": "partner", "sale_kind": "sell_out"}
    ).json()
    assert partners["spend_attributed"] is False
    assert [(r["value"], r["revenue"], r["spend"]) for r in partners["rows"]] == [
        ("P1", "1540.00", None),
        (None, "200.00", None),
    ]
    in_eur = measurement.get(
        "/api/v1/kpis/sales", params={**march, "by": "channel", "currency": "EUR"}
    ).json()
    assert in_eur["currency"] == "EUR"

    for params, field in (
        ({"by": "colour"}, "by"),
        ({}, "by"),
        ({"by": "brand", "sale_kind": "resale"}, "sale_kind"),
        ({"by": "brand", "currency": "GBP"}, "currency"),
        ({"by": "brand", "from": APRIL.isoformat(), "to": MARCH.isoformat()}, "to"),
    ):
        response = measurement.get("/api/v1/kpis/sales", params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["detail"][0]["loc"] == ["query", field], params
