"""Scopes spanning campaigns of two currencies on chDB — a channel, the company, a series, a
campaign's peers — converted with a configured rate or answered per currency without one. Every
value is computed by hand from one fixed event set.

The session shares one chDB engine: the events live in March 2095 (no other test uses that
year) with ids and a channel name unique per module, so a window on March 2095 sees only them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal as D
from typing import Any

import httpx
import pytest
from clickhouse_connect.driver.client import Client
from scenario_kit import EventScenario

from services.measurement import warehouse
from shared.events.ingest import AdMetricsReported, LeadStageChanged, SaleCompleted, SpendRecorded
from shared.events.planning import CampaignPlanned, KpiTargetSet, PlanCreated
from shared.money import FxRates

pytestmark = pytest.mark.integration

Y = 2095
MARCH = dt.datetime(Y, 3, 1, tzinfo=dt.UTC)
APRIL = dt.datetime(Y, 4, 1, tzinfo=dt.UTC)
NOW = dt.datetime(Y, 3, 16, 12, tzinfo=dt.UTC)  # half of March gone
RATED = FxRates(base="USD", rates={"EUR": D("1.08")})  # 1 EUR = 1.08 USD
UNRATED = FxRates(base="USD", rates={})
TOKEN = "t-currencies-viewer"


def at(day: int, hour: int = 10) -> dt.datetime:
    """A UTC timestamp in March of the scenario's year."""
    return dt.datetime(Y, 3, day, hour, tzinfo=dt.UTC)


class Scenario(EventScenario):
    """Builds the fixed event set (event ids derive from names)."""

    def __init__(self, uid: str) -> None:
        super().__init__(uid)
        self.S = f"fx{uid}"  # the channel

    def plan(self, key: str, currency: str) -> None:
        """A plan.created of the year."""
        data = PlanCreated(
            plan_id=self.id(key),
            name=f"plan {key}",
            period_start=dt.date(Y, 1, 1),
            period_end=dt.date(Y, 12, 31),
            currency=currency,
            owner="cmo",
        )
        self.add(f"plan-{key}", data, at(1))

    def campaign(self, key: str, plan: str, currency: str, budget: str, margin: str, **kw: Any):  # type: ignore[no-untyped-def]
        """A campaign.planned in channel S."""
        data = CampaignPlanned(
            campaign_id=self.id(key),
            plan_id=self.id(plan),
            name=f"campaign {key}",
            channel=self.S,
            owner="ann",
            budget=D(budget),
            currency=currency,
            gross_margin=D(margin),
            **kw,
        )
        self.add(f"campaign-{key}", data, at(1))

    def spend(self, campaign: str, amount: str, currency: str, when: dt.datetime) -> None:
        """A spend.recorded in channel S."""
        data = SpendRecorded(
            campaign_id=self.id(campaign), channel=self.S, amount=D(amount), currency=currency
        )
        self.add(f"spend-{campaign}", data, when)

    def lead(self, lead: str, campaign: str | None, stage: str, when: dt.datetime) -> None:
        """A lead.stage_changed in channel S."""
        data = LeadStageChanged(
            lead_id=self.id(lead),
            campaign_id=campaign and self.id(campaign),
            channel=self.S,
            stage=stage,
            customer_id=self.id("KE1") if stage == "customer" else None,
        )
        self.add(f"lead-{lead}-{stage}", data, when)

    def sale(  # type: ignore[no-untyped-def]
        self, name, customer, campaign, amount, currency, when, discount="0"
    ) -> None:
        """A sale.completed (channel S when unattributed)."""
        data = SaleCompleted(
            order_id=self.id(name),
            customer_id=self.id(customer),
            campaign_id=campaign and self.id(campaign),
            channel=None if campaign else self.S,
            amount=D(amount),
            discount_amount=D(discount),
            currency=currency,
        )
        self.add(f"sale-{name}", data, when)


def build(uid: str) -> Scenario:
    """U1 (USD plan, budget 10,000, margin 0.5) and E1 (EUR plan, budget 2,000, margin 1.0),
    both in channel S for March; NEXT (USD, April) compares itself with them."""
    s = Scenario(uid)
    s.plan("PU", "USD")
    s.plan("PE", "EUR")
    march = {"start_date": dt.date(Y, 3, 1), "end_date": dt.date(Y, 3, 31)}
    s.campaign("U1", "PU", "USD", "10000", "0.5", **march)
    s.campaign("E1", "PE", "EUR", "2000", "1.0", **march)
    april = {"start_date": dt.date(Y, 4, 1), "end_date": dt.date(Y, 4, 30)}
    s.campaign("NEXT", "PU", "USD", "5000", "1.0", **april)
    s.add(
        "target-U1",
        KpiTargetSet(
            target_id=s.id("t-U1"),
            campaign_id=s.id("U1"),
            kpi="leads",
            target=D(2),
            direction="higher_is_better",
        ),
        at(1),
    )
    s.add(
        "target-E1",
        KpiTargetSet(
            target_id=s.id("t-E1"),
            campaign_id=s.id("E1"),
            kpi="cpl",
            target=D(400),
            direction="lower_is_better",
        ),
        at(1),
    )
    s.spend("U1", "47000.18", "USD", at(2))
    s.spend("E1", "1000.00", "EUR", at(2))
    for campaign, impressions, clicks in (("U1", 100_000, 2_000), ("E1", 20_000, 500)):
        data = AdMetricsReported(
            campaign_id=s.id(campaign), channel=s.S, impressions=impressions, clicks=clicks
        )
        s.add(f"ads-{campaign}", data, at(2))
    s.lead("LU1", "U1", "lead", at(2))
    s.lead("LU2", "U1", "lead", at(3))
    s.lead("LU2", "U1", "mql", at(6))
    s.lead("LU3", "U1", "visitor", at(3))
    s.lead("LE1", "E1", "lead", at(2))
    s.lead("LE2", "E1", "lead", at(5))
    s.lead("LE2", "E1", "customer", at(6))
    s.lead("L0", None, "lead", at(6))  # no campaign: in the default currency's share
    s.sale("s1", "KU1", "U1", "1200.00", "USD", at(3), discount="100.00")
    s.sale("s2", "KU1", "U1", "300.00", "USD", at(10))
    s.sale("s3", "KE1", "E1", "500.00", "EUR", at(4), discount="50.00")
    s.sale("s4", "K0", None, "200.00", "USD", at(4))  # unattributed, in channel S
    s.sale("s5", "KX", "E1", "100.00", "EUR", at(5))  # KX first buys in EUR …
    s.sale("s6", "KX", "U1", "400.00", "USD", at(20))  # … then in USD
    return s


@pytest.fixture(scope="module")
def scenario(warehouse_client: Client) -> Scenario:
    """The event set, inserted once per module."""
    s = build(uuid.uuid4().hex[:10])
    s.insert(warehouse_client)
    return s


# In channel S over March, by hand (1 EUR = 1.08 USD):
# spend 47,000.18 USD + 1,000.00 EUR = 47,000.18 + 1,080.00 = 48,080.18 USD
# clicks 2,000 + 500; leads LU1 LU2 LE1 LE2 L0 (LU3 is a visitor)
# revenue 1,200 + 300 + 200 + 400 USD (2,100) + 500 + 100 EUR (600 → 648) = 2,748.00
# gross profit (1,200 + 300 + 400) × .5 + 200 (unattributed: margin 1) = 1,150 USD, + 648
# discounts 100 USD + 50 EUR (54) = 154.00; new customers KU1 KE1 K0 KX
# budget 10,000 USD + 2,000 EUR (2,160) = 12,160.00
USD_SHARE = {
    "spend": D("47000.18"),
    "clicks": 2_000,
    "leads": 3,  # LU1 LU2, and L0 (no campaign: the default currency)
    "cpl": D("15666.73"),  # 47,000.18 / 3
    "revenue": D("2100.00"),
    "orders": 4,
    "gross_profit": D("1150.00"),
    "new_customers": 2,  # KU1 K0 (KX first bought in EUR)
    "cac": D("23500.09"),
    "ltv_customers": 2,
    "ltv": D("475.00"),  # (750 + 200) / 2: their sales in USD
    "romi": D("-0.975532"),  # (1,150 - 47,000.18) / 47,000.18
    "budget": D("10000.00"),
    "ckpi": D("100.00"),  # U1: 2 leads for a target of 2
}
EUR_SHARE = {
    "spend": D("1000.00"),
    "clicks": 500,
    "leads": 2,
    "cpl": D("500.00"),
    "revenue": D("600.00"),
    "orders": 2,
    "gross_profit": D("600.00"),
    "new_customers": 2,  # KE1 KX
    "cac": D("500.00"),
    "ltv_customers": 2,
    "ltv": D("300.00"),  # KE1 500 + KX 100 (KX's USD sale is in USD's amounts)
    "romi": D("-0.400000"),
    "budget": D("2000.00"),
    "ckpi": D("80.00"),  # E1: CPL 500 for a target of 400 (lower is better)
}


def shares_by_hand(k: dict[str, Any]) -> None:
    """``k``'s per-currency answers are the hand-computed ones."""
    for currency, expected in (("USD", USD_SHARE), ("EUR", EUR_SHARE)):
        mine = k["by_currency"][currency]
        assert {name: mine[name] for name in expected} == expected, currency


def test_a_channel_in_two_currencies_converts_with_a_rate(
    warehouse_client: Client, scenario: Scenario
) -> None:
    k = warehouse.channel_kpis(
        warehouse_client, channel=scenario.S, fx=RATED, start=MARCH, end=APRIL, now=NOW
    )
    assert k is not None
    assert (k["currency"], k["fx_rates"], k["missing_rates"]) == ("USD", {"EUR": D("1.08")}, [])
    assert k["spend"] == D("48080.18")
    assert (k["impressions"], k["clicks"], k["ctr"]) == (120_000, 2_500, D("0.020833"))
    assert k["cpc"] == D("19.23")  # 48,080.18 / 2,500 = 19.232
    assert (k["leads"], k["cpl"]) == (5, D("9616.04"))  # 9,616.036
    assert k["funnel"]["visitor"] == 6 and k["funnel"]["customer"] == 1
    assert (k["revenue"], k["gross_profit"], k["discounts"]) == (
        D("2748.00"),
        D("1798.00"),
        D("154.00"),
    )
    assert (k["orders"], k["average_check"]) == (6, D("458.00"))
    assert (k["customers"], k["repeat_purchase_rate"]) == (4, D("0.500000"))  # KU1 KX
    assert (k["new_customers"], k["cac"]) == (4, D("12020.05"))  # 12,020.045
    # cohort KU1 750 USD, K0 200 USD, KX 200 USD + 100 EUR, KE1 500 EUR: (1,150 + 648) / 4
    assert (k["ltv_customers"], k["ltv"], k["ltv_cac"]) == (4, D("449.50"), D("0.037396"))
    assert k["romi"] == D("-0.962604")  # (1,798 - 48,080.18) / 48,080.18
    assert k["roi"] == D("-0.962724")  # (1,798 - 48,080.18 - 154) / (48,080.18 + 154)
    assert k["marketing_pct_of_sales"] == D("17.496426")  # 48,080.18 / 2,748
    assert (k["budget"], k["budget_utilisation"]) == (D("12160.00"), D("3.953962"))
    assert k["forecast_at_completion"] == D("96160.36")  # half of March gone
    assert k["ckpi"] == D("90.00")  # (1 × 1.0 + 1 × 0.8) / 2 × 100
    assert sorted(k["by_currency"]) == ["EUR", "USD"]
    shares_by_hand(k)


def test_a_channel_without_a_rate_adds_nothing_across_currencies(
    warehouse_client: Client, scenario: Scenario
) -> None:
    k = warehouse.channel_kpis(
        warehouse_client, channel=scenario.S, fx=UNRATED, start=MARCH, end=APRIL, now=NOW
    )
    assert k is not None
    assert (k["currency"], k["fx_rates"], k["missing_rates"]) == ("USD", {}, ["EUR"])
    amounts = ("spend", "cpc", "cpl", "cac", "revenue", "gross_profit", "discounts", "ltv")
    ratios = ("romi", "roi", "ltv_cac", "marketing_pct_of_sales", "budget_utilisation")
    for name in (*amounts, *ratios, "average_check", "budget", "forecast_at_completion"):
        assert k[name] is None, name
    # counts do not depend on a rate
    assert (k["leads"], k["clicks"], k["new_customers"], k["orders"]) == (5, 2_500, 4, 6)
    assert k["ckpi"] == D("90.00")  # each campaign judged in its own currency
    shares_by_hand(k)


def test_a_channel_reported_in_another_currency(
    warehouse_client: Client, scenario: Scenario
) -> None:
    k = warehouse.channel_kpis(
        warehouse_client,
        channel=scenario.S,
        fx=RATED,
        currency="EUR",
        start=MARCH,
        end=APRIL,
        now=NOW,
    )
    assert k is not None
    assert k["currency"] == "EUR" and k["missing_rates"] == []
    assert k["fx_rates"] == {"USD": D(1) / D("1.08")}
    assert k["spend"] == D("44518.69")  # 47,000.18 / 1.08 + 1,000 = 44,518.685…
    assert k["revenue"] == D("2544.44")  # 2,100 / 1.08 + 600 = 2,544.444…
    assert k["cpl"] == D("8903.74")  # 44,518.685… / 5
    assert k["budget"] == D("11259.26")  # 10,000 / 1.08 + 2,000

    # within plan PE (EUR) the channel answers in the plan's currency; its LTV cohort (KE1,
    # KX) holds KX's later sale in USD, which needs a rate to EUR
    def in_plan(fx: FxRates) -> dict[str, Any]:
        k = warehouse.channel_kpis(
            warehouse_client,
            channel=scenario.S,
            plan_id=scenario.id("PE"),
            fx=fx,
            start=MARCH,
            end=APRIL,
            now=NOW,
        )
        assert k is not None
        assert (k["currency"], k["spend"], k["cpl"]) == ("EUR", D("1000.00"), D("500.00"))
        return k

    rated = in_plan(RATED)
    assert (rated["missing_rates"], rated["fx_rates"]) == ([], {"USD": D(1) / D("1.08")})
    assert rated["ltv"] == D("392.59")  # (500 + 100 + 400 × .5 / 1.08) / 2 = 392.592…
    unrated = in_plan(UNRATED)
    assert (unrated["missing_rates"], unrated["ltv"], unrated["ltv_customers"]) == (
        ["USD"],
        None,
        2,
    )
    assert unrated["by_currency"]["EUR"]["ltv"] == D("300.00")  # their sales in EUR
    assert unrated["by_currency"]["USD"]["spend"] == D("0.00")


def test_the_company_in_two_currencies(warehouse_client: Client, scenario: Scenario) -> None:
    # March 2095 holds only this scenario's events: the period's figures are the channel's
    rated = warehouse.company_kpis(warehouse_client, fx=RATED, start=MARCH, end=APRIL, now=NOW)
    assert (rated["currency"], rated["fx_rates"]["EUR"]) == ("USD", D("1.08"))
    assert "EUR" not in rated["missing_rates"]
    assert (rated["spend"], rated["revenue"], rated["cpl"]) == (
        D("48080.18"),
        D("2748.00"),
        D("9616.04"),
    )
    assert (rated["romi"], rated["budget"], rated["campaigns"]) == (
        D("-0.962604"),
        D("12160.00"),
        2,
    )
    assert rated["ckpi"] == D("90.00")
    unrated = warehouse.company_kpis(warehouse_client, fx=UNRATED, start=MARCH, end=APRIL, now=NOW)
    assert unrated["currency"] == "USD" and "EUR" in unrated["missing_rates"]
    assert (unrated["spend"], unrated["revenue"], unrated["romi"]) == (None, None, None)
    assert (unrated["leads"], unrated["new_customers"]) == (5, 4)
    eur, usd = unrated["by_currency"]["EUR"], unrated["by_currency"]["USD"]
    assert (eur["spend"], eur["revenue"], eur["cpl"]) == (D("1000.00"), D("600.00"), D("500.00"))
    assert (usd["spend"], usd["revenue"], usd["leads"]) == (D("47000.18"), D("2100.00"), 3)
    # the company's LTV cohort is every customer the engine has seen (other tests' too): only
    # the period's figures are exact


def test_a_series_converts_bucket_by_bucket(warehouse_client: Client, scenario: Scenario) -> None:
    def series(fx: FxRates) -> dict[dt.date, dict[str, Any]]:
        got = warehouse.kpi_series(
            warehouse_client,
            scope="channel",
            id=scenario.S,
            fx=fx,
            start=at(2, 0),
            end=at(6, 0),
            bucket="day",
            now=NOW,
        )
        assert got is not None
        assert got["currency"] == "USD"
        assert got["missing_rates"] == ([] if fx is RATED else ["EUR"])
        return {p["start"]: p for p in got["points"]}

    def row(p: dict[str, Any]) -> tuple[Any, ...]:
        return (p["spend"], p["leads"], p["new_customers"], p["revenue"], p["cpl"], p["romi"])

    rated = series(RATED)
    assert list(rated) == [dt.date(Y, 3, day) for day in (2, 3, 4, 5)]
    # Mar 2: both spends, LU1 LE1; Mar 3: s1 (KU1), LU2; Mar 4: s3 500 EUR (KE1), s4 200 USD
    # (K0); Mar 5: s5 100 EUR (KX), LE2
    assert row(rated[dt.date(Y, 3, 2)]) == (
        D("48080.18"),
        2,
        0,
        D("0.00"),
        D("24040.09"),
        D("-1.000000"),
    )
    assert row(rated[dt.date(Y, 3, 3)]) == (D("0.00"), 1, 1, D("1200.00"), D("0.00"), None)
    assert row(rated[dt.date(Y, 3, 4)]) == (D("0.00"), 0, 2, D("740.00"), None, None)
    assert rated[dt.date(Y, 3, 4)]["gross_profit"] == D("740.00")  # margin 1 on both
    assert row(rated[dt.date(Y, 3, 5)]) == (D("0.00"), 1, 1, D("108.00"), D("0.00"), None)
    day2 = rated[dt.date(Y, 3, 2)]["by_currency"]
    assert (day2["USD"]["spend"], day2["USD"]["leads"], day2["USD"]["cpl"]) == (
        D("47000.18"),
        1,
        D("47000.18"),
    )
    assert (day2["EUR"]["spend"], day2["EUR"]["cpl"]) == (D("1000.00"), D("1000.00"))

    unrated = series(UNRATED)
    # an amount with a part in EUR is unknown in USD; one all in USD is not
    assert row(unrated[dt.date(Y, 3, 2)]) == (None, 2, 0, D("0.00"), None, None)
    assert unrated[dt.date(Y, 3, 3)]["revenue"] == D("1200.00")
    assert row(unrated[dt.date(Y, 3, 4)]) == (D("0.00"), 0, 2, None, None, None)
    day4 = unrated[dt.date(Y, 3, 4)]["by_currency"]
    assert (day4["USD"]["revenue"], day4["USD"]["new_customers"]) == (D("200.00"), 1)
    assert (day4["EUR"]["revenue"], day4["EUR"]["new_customers"]) == (D("500.00"), 1)


def test_peers_pooled_across_currencies(warehouse_client: Client, scenario: Scenario) -> None:
    # NEXT (USD, April) against U1 and E1 over their whole history
    c = warehouse.compare_campaign(
        warehouse_client, campaign_id=scenario.id("NEXT"), fx=RATED, now=NOW
    )
    assert c is not None
    assert (c["campaign"]["currency"], c["campaign"]["spend"]) == ("USD", D("0.00"))
    assert {p["campaign_id"]: (p["currency"], p["spend"]) for p in c["peers"]} == {
        scenario.id("U1"): ("USD", D("47000.18")),
        scenario.id("E1"): ("EUR", D("1000.00")),
    }
    pooled = c["peers_pooled"]
    assert (pooled["currency"], pooled["missing_rates"]) == ("USD", [])
    # leads LU1 LU2 LE1 LE2 (L0 has no campaign); new customers KU1 KE1 KX (K0 is nobody's)
    assert (pooled["spend"], pooled["leads"], pooled["cpl"]) == (D("48080.18"), 4, D("12020.05"))
    assert (pooled["new_customers"], pooled["cac"]) == (3, D("16026.73"))  # 16,026.7266…
    assert pooled["revenue"] == D("2548.00")  # U1 1,900 USD + E1 600 EUR (648)
    assert pooled["romi"] == D("-0.966764")  # (950 + 648 - 48,080.18) / 48,080.18
    assert (pooled["budget"], pooled["budget_utilisation"]) == (D("12160.00"), D("3.953962"))
    assert pooled["lead_to_customer"] == D("0.250000")  # LE2 / 4
    assert pooled["by_currency"]["USD"]["cpl"] == D("23500.09")  # 47,000.18 / 2
    assert pooled["by_currency"]["EUR"]["new_customers"] == 2  # KE1 KX

    unrated = warehouse.compare_campaign(
        warehouse_client, campaign_id=scenario.id("NEXT"), fx=UNRATED, now=NOW
    )
    assert unrated is not None
    pooled = unrated["peers_pooled"]
    assert (pooled["missing_rates"], pooled["spend"], pooled["cpl"]) == (["EUR"], None, None)
    assert pooled["leads"] == 4
    assert pooled["by_currency"]["EUR"]["spend"] == D("1000.00")


@pytest.fixture
def measurement(measurement_api) -> httpx.Client:  # type: ignore[no-untyped-def]
    return measurement_api(bearer=TOKEN, timeout=20, currency="USD", fx_rates={"EUR": D("1.08")})


def test_routes_report_in_the_currency_asked_for(
    measurement: httpx.Client, scenario: Scenario
) -> None:
    march = {"from": MARCH.isoformat(), "to": APRIL.isoformat()}
    channel = f"/api/v1/kpis/channels/{scenario.S}"
    default = measurement.get(channel, params=march)
    assert default.status_code == 200, default.text
    body = default.json()
    assert (body["currency"], body["fx_rates"], body["missing_rates"]) == (
        "USD",
        {"EUR": "1.08"},
        [],
    )
    assert (body["spend"], body["revenue"]) == ("48080.18", "2748.00")
    assert body["by_currency"]["EUR"]["spend"] == "1000.00"
    assert body["by_currency"]["USD"]["spend"] == "47000.18"

    in_eur = measurement.get(channel, params={**march, "currency": "EUR"}).json()
    assert (in_eur["currency"], in_eur["spend"]) == ("EUR", "44518.69")
    assert in_eur["fx_rates"] == {"USD": "0.9259259259259259259259259259"}

    company = measurement.get("/api/v1/kpis/company", params={**march, "currency": "EUR"})
    assert company.status_code == 200, company.text
    assert (company.json()["currency"], company.json()["spend"]) == ("EUR", "44518.69")
    series = measurement.get(
        "/api/v1/kpis/series",
        params={**march, "scope": "channel", "id": scenario.S, "bucket": "week"},
    ).json()
    assert series["currency"] == "USD"
    assert sum(D(p["spend"]) for p in series["points"]) == D("48080.18")
    comparison = measurement.get(
        f"/api/v1/campaigns/{scenario.id('NEXT')}/comparison", params={"currency": "EUR"}
    ).json()
    assert (comparison["peers_pooled"]["currency"], comparison["peers_pooled"]["spend"]) == (
        "EUR",
        "44518.69",
    )

    for path in (
        channel,
        "/api/v1/kpis/company",
        f"/api/v1/campaigns/{scenario.id('U1')}/comparison",
    ):
        for bad in ("GBP", "XYZ", "eur"):  # no rate; not ISO 4217; not a code
            response = measurement.get(path, params={"currency": bad})
            assert response.status_code == 422, (path, bad, response.text)
            assert response.json()["detail"][0]["loc"] == ["query", "currency"]
    no_rate = measurement.get(channel, params={"currency": "GBP"}).json()["detail"][0]
    assert "no FX rate" in no_rate["msg"] and no_rate["field"] == "currency"
    response = measurement.get(
        "/api/v1/kpis/series",
        params={**march, "scope": "company", "currency": "GBP"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "currency"]
