"""Sales-target forecast on chDB through the route: a unit tree, a campaign planned against a
rep with its lead history and two open leads, sales of it, of a campaign of no unit and of none,
and every figure computed by hand (the unit test ``test_target_forecast`` has the same one).

May 2063 is this module's alone (no other test writes that year), so the company unit's "all
sales" are the scenario's; ids are unique per run.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal as D
from typing import Any

import httpx
import pytest
from clickhouse_connect.driver.client import Client
from scenario_kit import EventScenario, on_topics, tree_nodes

from shared.events.ingest import LeadStageChanged, SaleCompleted
from shared.events.planning import CampaignPlanned, SalesTargetSet, SalesUnitSet

pytestmark = pytest.mark.integration

Y = 2063  # the calendar of 2091: weekdays as in the figures worked out for that year
TOKEN = "t-target-forecast-viewer"
AS_OF = "2063-05-11T00:00:00Z"  # 10 of May's 31 days: a run rate is × 3.1


def at(month: int, day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(Y, month, day, hour, tzinfo=dt.UTC)


class Scenario(EventScenario):
    def unit(self, key: str, kind: str, parent: str | None, code: str | None) -> None:
        data = SalesUnitSet(
            unit_id=self.id(key),
            parent_id=parent and self.id(parent),
            kind=kind,  # type: ignore[arg-type]
            name=f"{key} {self.uid}",
            owner=f"owner-{key}",
            code=code and self.id(code),
        )
        self.add(f"unit-{key}", data, at(1, 1))

    def target(self, key: str, amount: str) -> None:
        data = SalesTargetSet(
            target_id=self.id(f"t-{key}"),
            unit_id=self.id(key),
            period=f"{Y}-05",
            period_start=dt.date(Y, 5, 1),
            period_end=dt.date(Y, 5, 31),
            amount=D(amount),
            currency="EUR",
            set_by="cmo",
        )
        self.add(f"target-{key}", data, at(1, 2))

    def campaign(self, key: str, unit: str | None, brand: str | None = None) -> None:
        data = CampaignPlanned(
            campaign_id=self.id(key),
            plan_id=self.id("plan"),
            name=f"campaign {key}",
            channel="search",
            owner="ann",
            budget=D("1000"),
            currency="EUR",
            start_date=dt.date(Y, 3, 1),
            end_date=dt.date(Y, 6, 30),
            sales_unit_id=unit and self.id(unit),
            brand=brand,
        )
        self.add(f"campaign-{key}", data, at(1, 3))

    def lead(self, name: str, stage: str, when: dt.datetime, **kw: Any) -> None:
        data = LeadStageChanged(
            lead_id=self.id(name),
            campaign_id=self.id("K"),
            channel="search",
            stage=stage,  # type: ignore[arg-type]
            customer_id=self.id(f"k-{name}") if stage == "customer" else None,
            **kw,
        )
        self.add(f"{name}-{stage}", data, when)

    def sale(self, name: str, amount: str, when: dt.datetime, campaign: str | None, **codes: str):  # type: ignore[no-untyped-def]
        data = SaleCompleted(
            order_id=self.id(name),
            customer_id=self.id(f"c-{name}"),
            campaign_id=campaign and self.id(campaign),
            amount=D(amount),
            currency="EUR",
            **{field: self.id(code) for field, code in codes.items()},
        )
        self.add(name, data, when)


def build(uid: str) -> Scenario:
    """Company → EMEA (→ rep a), North. K plans against rep a, L against no unit, M (brand
    Acme, no leads, no sales) against the North."""
    s = Scenario(uid)
    s.unit("co", "company", None, None)
    s.unit("emea", "region", "co", "EMEA")
    s.unit("north", "division", "co", "NORTH")
    s.unit("a", "rep", "emea", "rep-a")
    s.target("co", "1000")
    s.target("emea", "300")
    s.campaign("K", "a")
    s.campaign("L", None)
    s.campaign("M", "north", brand="Acme")
    # K's history: 5 leads, 2 customers after 10 and 30 days, 1 lost, 2 still open
    s.lead("l1", "lead", at(4, 1))
    s.lead("l1", "customer", at(4, 11))
    s.lead("l2", "lead", at(4, 1))
    s.lead("l2", "customer", at(5, 1))
    s.lead("l3", "lead", at(4, 2))
    s.lead("l3", "lost", at(4, 3))
    s.lead("o1", "lead", at(5, 8), expected_value=D("300"))  # waited 3 days
    s.lead("o2", "lead", at(5, 1))  # waited 10 days, no value: the average check
    # K's sales: 60 in April (history only), 100 by rep a in EMEA, 20 in the North;
    # L's 50 in EMEA; one after as_of
    s.sale("s0", "60", at(4, 20, 9), "K", rep_id="rep-a")
    s.sale("s1", "100", at(5, 3, 9), "K", rep_id="rep-a", region="EMEA")
    s.sale("s2", "50", at(5, 4, 9), "L", region="EMEA")
    s.sale("s3", "20", at(5, 5, 9), "K", region="NORTH")
    s.sale("s4", "999", at(5, 20, 9), None, region="EMEA")  # after as_of: not yet
    return s


@pytest.fixture(scope="module")
def scenario(warehouse_client: Client) -> Scenario:
    """The events inserted once per module, the sales once more (redelivered)."""
    s = build(uuid.uuid4().hex[:10])
    s.insert(warehouse_client, redelivered=on_topics("mrm.sales.v1"))
    return s


@pytest.fixture
def measurement(measurement_api) -> httpx.Client:  # type: ignore[no-untyped-def]
    return measurement_api(bearer=TOKEN, currency="EUR")


def test_forecast_of_each_unit(measurement: httpx.Client, scenario: Scenario) -> None:
    params = {"period": f"{Y}-05", "as_of": AS_OF}
    response = measurement.get("/api/v1/sales-targets/forecast", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["period_start"], body["period_end"], body["elapsed_share"]) == (
        "2063-05-01",
        "2063-05-31",
        "0.322581",
    )
    nodes = tree_nodes(body["units"])
    fields = ["sales", "run_rate", "campaign_sales", "other_sales", "other_run_rate"]
    fields += ["forecast", "gap", "forecast_share", "on_track"]
    figures = {
        key: " ".join(str(nodes[scenario.id(key)][f]) for f in fields)
        for key in ("co", "emea", "north", "a")
    }
    # pipeline of K to 1 June (21 days ahead): o1 converts with 2/5, 1/5 at 7 days (in) and
    # 1/5 at 27 days (out) → 1/5 × 300.00; o2 with (2/5 · 1/2) / (1 − 2/5 + 1/5) = 1/4 at
    # 20 days → 1/4 × the average check 60.00 (K's 180.00 / 3 orders): 0.45 customers, 75.00
    # a: 100 (K) + 75.00; emea: 100 (K) + 75.00 + 50 (L) × 3.1 = 330.00 against 300.00
    # north: K's 20 is not the North's: 20 × 3.1; co: 120 (K) + 75.00 + 50 × 3.1 = 350.00
    assert figures == {
        "a": "100.00 310.00 100.00 0.00 0.00 175.00 None None None",
        "emea": "150.00 465.00 100.00 50.00 155.00 330.00 -30.00 1.100000 True",
        "north": "20.00 62.00 0.00 20.00 62.00 62.00 None None None",
        "co": "170.00 527.00 120.00 50.00 155.00 350.00 650.00 0.350000 False",
    }
    assert nodes[scenario.id("emea")]["pipeline"] == {
        "campaigns": [scenario.id("K")],
        "open_leads": 2,
        "customers": "0.45",
        "revenue": "75.00",
        "missing_rates": [],
    }
    assert nodes[scenario.id("north")]["pipeline"] == {
        "campaigns": [scenario.id("M")],
        "open_leads": 0,
        "customers": "0.00",
        "revenue": "0.00",
        "missing_rates": [],
    }
    assert nodes[scenario.id("co")]["pipeline"]["campaigns"] == [scenario.id(c) for c in "KM"]
    assert nodes[scenario.id("co")]["pipeline"]["revenue"] == "75.00"
    children = [c["unit_id"] for c in nodes[scenario.id("co")]["children"]]
    assert children == [scenario.id("emea"), scenario.id("north")]


def test_after_the_period_the_forecast_is_the_sales(
    measurement: httpx.Client, scenario: Scenario
) -> None:
    params = {"period": f"{Y}-05", "as_of": "2063-07-01T00:00:00Z"}
    body = measurement.get("/api/v1/sales-targets/forecast", params=params).json()
    emea = tree_nodes(body["units"])[scenario.id("emea")]
    # s4 counts now; nothing is left to run or to convert before the period's end
    assert [emea[f] for f in ("sales", "run_rate", "forecast", "gap", "on_track")] == [
        "1149.00",
        "1149.00",
        "1149.00",
        "-849.00",
        True,
    ]
    assert (emea["pipeline"]["customers"], emea["pipeline"]["revenue"]) == ("0.00", "0.00")


def test_a_brand_counts_its_own_campaigns_and_sales(
    measurement: httpx.Client, scenario: Scenario
) -> None:
    params = {"period": f"{Y}-05", "as_of": AS_OF, "brand": "Acme"}
    body = measurement.get("/api/v1/sales-targets/forecast", params=params).json()
    nodes = tree_nodes(body["units"])
    # no sale names a brand, no target is Acme's; only M is an Acme campaign
    north, emea = nodes[scenario.id("north")], nodes[scenario.id("emea")]
    assert (north["sales"], north["forecast"], north["target"]) == ("0.00", "0.00", None)
    assert north["pipeline"]["campaigns"] == [scenario.id("M")]
    assert (emea["pipeline"], nodes[scenario.id("a")]["pipeline"]) == (None, None)
    assert nodes[scenario.id("co")]["pipeline"]["campaigns"] == [scenario.id("M")]


def test_bad_parameters_name_the_field(measurement: httpx.Client) -> None:
    for params, field in (
        ({"period": "2063-13"}, "period"),
        ({}, "period"),
        ({"period": "2063-05", "as_of": "2063-05-11"}, "as_of"),
        ({"period": "2063-05", "lookback_days": 0}, "lookback_days"),
    ):
        response = measurement.get("/api/v1/sales-targets/forecast", params=params)
        assert response.status_code == 422, (params, response.text)
        assert field in response.text, params
