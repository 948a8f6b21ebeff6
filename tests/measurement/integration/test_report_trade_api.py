"""The plan report's brand, partner and segment sections on the real service (chDB): events
written to the warehouse, the HTML report fetched, its rows checked against figures by hand.

The sections read every sale of the report's days, so the events live in 2084, which no other
test writes; ids and brand names carry a fresh ``uid``.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import uuid
from decimal import Decimal as D

import httpx
import pytest
from clickhouse_connect.driver.client import Client
from scenario_kit import EventScenario, on_topics

from shared.events.ingest import SaleCompleted, SpendRecorded
from shared.events.planning import CampaignPlanned, PlanCreated

pytestmark = pytest.mark.integration
Y = 2084
TOKEN = "t-report-trade-viewer"


def at(month: int, day: int) -> dt.datetime:
    return dt.datetime(Y, month, day, 10, tzinfo=dt.UTC)


class Scenario(EventScenario):
    """Plan RP (USD, March): R1 (brand acme, margin 0.5), R2 (brand bolt, margin 1.0); R3 of
    another plan, brand acme too.

    spend: R1 100 (3-02) and 999 (4-05, after the plan's period), R3 60 (3-03), R2 50 (3-04)
    sale | campaign | brand       | kind     | partner | customer | USD  | day
    u1   | R1       | acme (R1's) | sell_out | P1      | K1       | 1000 | 3-02
    u2   | —        | acme        | sell_in  | P2      | K2       |  200 | 3-03
    u3   | R2       | bolt (R2's) | sell_in  | P2      | K3       |  400 | 3-09, discount 40
    u4   | —        | bolt        | sell_out | P1      | K1       |  300 | 3-20
    u5   | R1       | acme        | —        | P1      | K2       |  100 | 3-25
    u6   | R1       | acme        | sell_out | P1      | K2       | 5000 | 4-05
    """

    def build(self) -> Scenario:
        self.acme, self.bolt = f"acme {self.uid}", f"bolt {self.uid}"
        plan = PlanCreated(
            plan_id=self.id("RP"),
            name="Trade report plan",
            period_start=dt.date(Y, 3, 1),
            period_end=dt.date(Y, 3, 31),
            currency="USD",
            owner="cmo",
        )
        self.add("plan", plan, at(1, 1))
        for key, plan_id, brand, margin in (
            ("R1", "RP", self.acme, "0.5"),
            ("R2", "RP", self.bolt, "1.0"),
            ("R3", "other", self.acme, "1.0"),
        ):
            campaign = CampaignPlanned(
                campaign_id=self.id(key),
                plan_id=self.id(plan_id),
                name=f"Campaign {key}",
                channel="search",
                brand=brand,
                owner="ann",
                budget=D("1000"),
                currency="USD",
                start_date=dt.date(Y, 3, 1),
                end_date=dt.date(Y, 4, 30),
                gross_margin=D(margin),
                target_segment="rfm:champions" if key == "R1" else None,
            )
            self.add(key, campaign, at(1, 2))
        for name, key, amount, when in (
            ("sp1", "R1", "100", at(3, 2)),
            ("sp1-apr", "R1", "999", at(4, 5)),
            ("sp3", "R3", "60", at(3, 3)),
            ("sp2", "R2", "50", at(3, 4)),
        ):
            spend = SpendRecorded(
                campaign_id=self.id(key), channel="search", amount=D(amount), currency="USD"
            )
            self.add(name, spend, when)
        for name, key, brand, kind, partner, customer, amount, when, discount in (
            ("u1", "R1", None, "sell_out", "P1", "K1", "1000", at(3, 2), "0"),
            ("u2", None, self.acme, "sell_in", "P2", "K2", "200", at(3, 3), "0"),
            ("u3", "R2", None, "sell_in", "P2", "K3", "400", at(3, 9), "40"),
            ("u4", None, self.bolt, "sell_out", "P1", "K1", "300", at(3, 20), "0"),
            ("u5", "R1", None, None, "P1", "K2", "100", at(3, 25), "0"),
            ("u6", "R1", None, "sell_out", "P1", "K2", "5000", at(4, 5), "0"),
        ):
            sale = SaleCompleted(
                order_id=self.id(name),
                customer_id=self.id(customer),
                campaign_id=key and self.id(key),
                amount=D(amount),
                discount_amount=D(discount),
                currency="USD",
                brand=brand,
                sale_kind=kind,
                partner_id=self.id(partner),
            )
            self.add(name, sale, when)
        return self


@pytest.fixture(scope="module")
def scenario(warehouse_client: Client) -> Scenario:
    """The events written once, the sales and spend once more (redelivered)."""
    s = Scenario(uuid.uuid4().hex[:10]).build()
    s.insert(warehouse_client, redelivered=on_topics("mrm.sales.v1", "mrm.spend.v1"))
    return s


@pytest.fixture
def measurement(measurement_api) -> httpx.Client:  # type: ignore[no-untyped-def]
    return measurement_api(bearer=TOKEN, currency="USD")


def section(page: str, section_id: str) -> str:
    found = re.search(rf'<section id="{section_id}">(.*?)</section>', page, re.S)
    assert found, f"no section {section_id}"
    return found[1]


def cells(part: str, row: str) -> list[str]:
    """The cells of the row ``data-row=row``, unescaped."""
    found = re.search(rf'<tr data-row="{re.escape(html.escape(row))}">(.*?)</tr>', part, re.S)
    assert found, f"no row {row!r}"
    return [
        html.unescape(re.sub(r"<[^>]+>", "", c))
        for c in re.findall(r"<td[^>]*>(.*?)</td>", found[1])
    ]


def test_the_plans_period_by_brand_partner_and_segment(
    measurement: httpx.Client, scenario: Scenario
) -> None:
    response = measurement.get(f"/api/v1/reports/plans/{scenario.id('RP')}")
    assert response.status_code == 200, response.text
    page = response.text
    brands = section(page, "brands")
    # acme: u1 + u2 + u5 (u6 is April) = 1300, gross 500 + 200 + 50; share 1300 / 2000;
    # plan spend R1 100 (its April spend lies outside); all acme campaigns R1 + R3 = 160;
    # ROMI (750 − 160) / 160
    assert cells(brands, scenario.acme) == [
        scenario.acme,
        "3",
        "1,300.00",
        "0.00",
        "750.00",
        "65.00 %",
        "100.00",
        "160.00",
        "368.75 %",
    ]
    # bolt: u3 + u4 = 700 at margin 1; discount 40; spend R2 50; ROMI (700 − 50) / 50
    assert cells(brands, scenario.bolt) == [
        scenario.bolt,
        "2",
        "700.00",
        "40.00",
        "700.00",
        "35.00 %",
        "50.00",
        "50.00",
        "1,300.00 %",
    ]
    partners = section(page, "partners")
    p1, p2 = scenario.id("P1"), scenario.id("P2")
    # P1: u1 + u4 sell-out, u5 of no kind; P2: u2 + u3 sell-in
    assert cells(partners, p1) == [p1, "0", "0.00", "2", "1,300.00", "1,400.00", "0.00", "70.00 %"]
    assert cells(partners, p2) == [p2, "2", "600.00", "0", "0.00", "600.00", "40.00", "30.00 %"]
    targets = section(page, "target-segments")
    # R1 in March: spend 100, sales u1 + u5 = 1100 at margin 0.5, new customer K1 (u1 is
    # K1's first sale; K2's first is u2, of no campaign): CAC 100, ROMI (550 − 100) / 100
    assert cells(targets, "rfm:champions") == [
        "rfm:champions", "1", "100.00", "0", "1", "1,100.00", "—", "100.00", "450.00 %", "—",
    ]  # fmt: skip
    # R2: spend 50, u3 400 at margin 1, new customer K3: CAC 50, ROMI (400 − 50) / 50
    assert cells(targets, "(no target)") == [
        "(no target)", "1", "50.00", "0", "1", "400.00", "—", "50.00", "700.00 %", "—",
    ]  # fmt: skip
    segments = section(page, "segments")
    # March buyers: K1 (last 3-20, 2 orders, 1300), K2 (3-25, 2, 300), K3 (3-09, 1, 400):
    # R K3 1, K1 2, K2 4; F K3 1, K1 = K2 2; M K2 1, K3 2, K1 4
    # → K1 (2, 2, 4) and K3 (1, 1, 2) hibernating, K2 (4, 2, 1) promising
    assert cells(segments, "promising") == ["promising", "1", "33.33 %"]
    assert cells(segments, "hibernating") == ["hibernating", "2", "66.67 %"]
    assert cells(segments, "champions") == ["champions", "0", "0.00 %"]
    assert "The 3 customers" in segments


def test_from_and_to_move_the_sections(measurement: httpx.Client, scenario: Scenario) -> None:
    period = {"from": f"{Y}-03-21T00:00:00Z", "to": f"{Y}-04-06T00:00:00Z"}
    page = measurement.get(f"/api/v1/reports/plans/{scenario.id('RP')}", params=period).text
    brands = section(page, "brands")
    # u5 + u6 = 5100; plan spend R1 999 (April 5); bolt has no sale left, but R2 is the plan's
    assert cells(brands, scenario.acme)[:3] == [scenario.acme, "2", "5,100.00"]
    assert cells(brands, scenario.acme)[6] == "999.00"
    assert cells(brands, scenario.bolt)[1:3] == ["0", "—"]
    segments = section(page, "segments")
    assert cells(segments, "new") == ["new", "0", "0.00 %"]
    assert "The 1 customers" in segments  # K2 only
