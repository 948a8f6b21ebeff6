"""The pipeline forecast of a campaign, plan and channel on chDB and over HTTP — every figure
computed by hand from one fixed event set (see ``build``), delivered twice.

The session shares one chDB engine: ids and channel names are unique per module.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal as D
from fractions import Fraction as F
from typing import Any

import httpx
import pytest
from clickhouse_connect.driver.client import Client
from scenario_kit import EventScenario, every_event

from services.measurement import pipeline
from services.measurement.pipeline import Amounts
from services.measurement.warehouse.pipeline import pipeline_inputs
from shared.events.ingest import LeadStageChanged, SaleCompleted
from shared.events.planning import CampaignPlanned, PlanCreated
from shared.money import FxRates

pytestmark = pytest.mark.integration

Y = 2066
AS_OF = dt.datetime(Y, 3, 1, 9, tzinfo=dt.UTC)
TOKEN = "t-pipeline-viewer"
FX = FxRates(base="EUR", rates={})


def at(month: int, day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(Y, month, day, hour, tzinfo=dt.UTC)


class Scenario(EventScenario):
    """Plan P: campaign A (channel ``a``) and B (channel ``b``)."""

    def __init__(self, uid: str) -> None:
        super().__init__(uid)
        self.a, self.b = f"fa{uid}", f"fb{uid}"

    def lead(self, lead: str, campaign: str, stage: str, when: dt.datetime, **kw: Any) -> None:
        channel = self.a if campaign == "A" else self.b
        if "customer_id" in kw:
            kw["customer_id"] = self.id(kw["customer_id"])
        data = LeadStageChanged(
            lead_id=self.id(lead), campaign_id=self.id(campaign), channel=channel, stage=stage, **kw
        )
        self.add(f"{lead}-{stage}", data, when)


def build(uid: str) -> Scenario:
    """History of A (January): H1 lead → mql → customer after 11 days from lead, 10 from mql
    (sale 300); H2 the same after 21 / 20 days (sale 500); H3 lost at mql, H4 lost at lead.
    Open leads of A: O1 at lead since Feb 25 09:00 (expected 1000), O2 at mql since Feb 28
    09:00 (no value), O3 at mql since Feb 22 09:00 (expected 600). B: O4 at opportunity since
    Feb 28 09:00, no value, and a lost lead."""
    s = Scenario(uid)
    s.add(
        "plan",
        PlanCreated(
            plan_id=s.id("P"),
            name="Plan",
            period_start=dt.date(Y, 1, 1),
            period_end=dt.date(Y, 12, 31),
            currency="EUR",
            owner="cmo",
        ),
        at(1, 1),
    )
    for key, channel in (("A", s.a), ("B", s.b)):
        campaign = CampaignPlanned(
            campaign_id=s.id(key),
            plan_id=s.id("P"),
            name=f"campaign {key}",
            channel=channel,
            owner="ann",
            budget=D("1000"),
            currency="EUR",
            start_date=dt.date(Y, 1, 1),
            end_date=dt.date(Y, 6, 30),
        )
        s.add(f"campaign-{key}", campaign, at(1, 1))
    for n, days in (("H1", 11), ("H2", 21)):
        s.lead(n, "A", "lead", at(1, 1))
        s.lead(n, "A", "mql", at(1, 2))
        s.lead(n, "A", "customer", at(1, 1 + days), customer_id=f"K{n}")
    s.lead("H3", "A", "lead", at(1, 1))
    s.lead("H3", "A", "mql", at(1, 2))
    s.lead("H3", "A", "lost", at(1, 10))
    s.lead("H4", "A", "lead", at(1, 1))
    s.lead("H4", "A", "lost", at(1, 3))
    for customer, amount, day in (("KH1", "300.00", 12), ("KH2", "500.00", 22)):
        sale = SaleCompleted(
            order_id=s.id(f"o-{customer}"),
            customer_id=s.id(customer),
            campaign_id=s.id("A"),
            amount=D(amount),
            currency="EUR",
        )
        s.add(f"sale-{customer}", sale, at(1, day, 1))
    s.lead("O1", "A", "lead", at(2, 25, 9), expected_value=D("1000.00"))
    s.lead("O2", "A", "lead", at(2, 26, 9))
    s.lead("O2", "A", "mql", at(2, 28, 9))
    s.lead("O3", "A", "mql", at(2, 22, 9), expected_value=D("600.00"))
    s.lead("O4", "B", "opportunity", at(2, 28, 9))
    s.lead("X1", "B", "lead", at(2, 1))
    s.lead("X1", "B", "lost", at(2, 2))
    s.lead("LATE", "A", "lead", at(3, 2))  # after as_of: not seen
    return s


@pytest.fixture(scope="module")
def scenario(warehouse_client: Client) -> Scenario:
    s = build(uuid.uuid4().hex[:10])
    s.insert(warehouse_client, redelivered=every_event)  # redelivered: counts once
    return s


def forecast(client: Client, scope: str, id: str, **kw: Any) -> pipeline.Forecast:
    inputs = pipeline_inputs(client, scope=scope, id=id, fx=FX, as_of=AS_OF, **kw)
    assert inputs is not None and inputs.currency == "EUR" and inputs.missing_rates == []
    return pipeline.forecast(leads=inputs.leads, history=inputs.history, as_of=AS_OF)


def test_inputs_of_a_campaign(warehouse_client: Client, scenario: Scenario) -> None:
    inputs = pipeline_inputs(
        warehouse_client, scope="campaign", id=scenario.id("A"), fx=FX, as_of=AS_OF
    )
    assert inputs is not None
    assert inputs.leads == [
        pipeline.OpenLeads("lead", at(2, 25, 9), 1, 1, D("1000.00")),
        pipeline.OpenLeads("mql", at(2, 22, 9), 1, 1, D("600.00")),
        pipeline.OpenLeads("mql", at(2, 28, 9), 1, 0, D("0.00")),
    ]
    # highest stages: H1 H2 customer, H3 O2 O3 mql, H4 O1 lead
    assert tuple(inputs.history.reached) == (7, 7, 5, 2, 2, 2, 2)
    assert inputs.history.days_to_customer["lead"] == [F(11), F(21)]
    assert inputs.history.days_to_customer["mql"] == [F(10), F(20)]
    assert inputs.history.days_to_customer["sql"] == []
    assert inputs.history.average_check == D("400.00")


# Campaign A: lead → customer 2/7, mql → customer 2/5; nobody waited past a duration.
# O1 (waited 4 days): 1/7 at 7 and 17 days ahead (weeks 2, 3), 1000 each.
# O2 (waited 1 day): 1/5 at 9 and 19 days ahead (weeks 2, 3), the average check 400.
# O3 (waited 7 days): 1/5 at 3 and 13 days ahead (weeks 1, 2), 600.
CAMPAIGN_WEEKS = [
    Amounts(D("0.20"), D("120.00")),
    Amounts(D("0.54"), D("342.86")),  # 19/35; 1000/7 + 80 + 120
    Amounts(D("0.34"), D("222.86")),  # 12/35; 1000/7 + 80
]


def test_campaign_forecast_by_hand(warehouse_client: Client, scenario: Scenario) -> None:
    result = forecast(warehouse_client, "campaign", scenario.id("A"))
    assert result.open_leads == 3
    assert [w.expected for w in result.weeks[:3]] == CAMPAIGN_WEEKS
    assert all(w.expected.customers == 0 for w in result.weeks[3:])
    assert result.totals == Amounts(D("1.09"), D("685.71"))  # 38/35
    assert result.later == Amounts(D("0.00"), D("0.00"))
    rates = {r.stage: r for r in result.rates}
    assert (rates["lead"].to_customer, rates["lead"].to_next) == (D("0.285714"), D("0.714286"))
    assert rates["lead"].median_days_to_customer == D("16.00")
    assert (rates["mql"].to_customer, rates["mql"].median_days_to_customer) == (
        D("0.400000"),
        D("15.00"),
    )


def test_channel_is_the_campaigns_own(warehouse_client: Client, scenario: Scenario) -> None:
    result = forecast(warehouse_client, "channel", scenario.a.upper())
    assert [w.expected for w in result.weeks[:3]] == CAMPAIGN_WEEKS


def test_plan_forecast_by_hand(warehouse_client: Client, scenario: Scenario) -> None:
    # plan P adds B's O4 (opportunity) and X1 (lost at lead): reached 9 9 6 3 3 3 2;
    # lead → customer 2/9, mql 2/6, opportunity 2/3 but no timing → later, at 400
    result = forecast(warehouse_client, "plan", scenario.id("P"))
    assert result.open_leads == 4
    # O1 2/9 → 1/9 per duration; O2, O3 1/3 → 1/6 per duration
    assert [w.expected.customers for w in result.weeks[:3]] == [D("0.17"), D("0.44"), D("0.28")]
    assert result.later == Amounts(D("0.67"), D("266.67"))
    assert {r.stage: r.open_leads for r in result.rates}["opportunity"] == 1


def test_lookback_limits_the_history(warehouse_client: Client, scenario: Scenario) -> None:
    inputs = pipeline_inputs(
        warehouse_client,
        scope="campaign",
        id=scenario.id("A"),
        fx=FX,
        as_of=AS_OF,
        lookback_days=10,
    )
    assert inputs is not None
    assert len(inputs.leads) == 3  # open leads come from all history
    assert tuple(inputs.history.reached) == (3, 3, 2, 0, 0, 0, 0)  # O1 O2 O3 only
    assert inputs.history.average_check is None
    result = pipeline.forecast(leads=inputs.leads, history=inputs.history, as_of=AS_OF)
    assert result.totals == Amounts(D("0.00"), D("0.00"))


def test_unknown_scopes(warehouse_client: Client, scenario: Scenario) -> None:
    for scope in ("campaign", "plan"):
        found = pipeline_inputs(
            warehouse_client, scope=scope, id=scenario.id("nope"), fx=FX, as_of=AS_OF
        )
        assert found is None
    nothing = forecast(warehouse_client, "channel", f"none{scenario.uid}")
    assert nothing.open_leads == 0 and nothing.totals == Amounts(D("0.00"), D("0.00"))


@pytest.fixture
def measurement(measurement_api) -> httpx.Client:  # type: ignore[no-untyped-def]
    return measurement_api(bearer=TOKEN, timeout=20, currency="EUR")


def test_route(measurement: httpx.Client, scenario: Scenario) -> None:
    path = "/api/v1/forecast/pipeline"
    params = {"campaign_id": scenario.id("A"), "as_of": AS_OF.isoformat(), "weeks": "4"}
    response = measurement.get(path, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["scope"], body["id"], body["currency"]) == ("campaign", scenario.id("A"), "EUR")
    assert body["open_leads"] == 3 and body["average_check"] == "400.00"
    assert body["lookback_days"] is None and body["missing_rates"] == []
    assert [(w["week"], w["customers"], w["revenue"]) for w in body["weeks"]] == [
        (1, "0.20", "120.00"),
        (2, "0.54", "342.86"),
        (3, "0.34", "222.86"),
        (4, "0.00", "0.00"),
    ]
    assert body["weeks"][1]["week_start"] == "2066-03-08T09:00:00Z"
    assert body["totals"] == {"customers": "1.09", "revenue": "685.71"}
    assert body["rates"][2] == {
        "stage": "mql",
        "open_leads": 2,
        "reached": 5,
        "to_next": "0.400000",
        "to_customer": "0.400000",
        "median_days_to_customer": "15.00",
        "timed_customers": 2,
    }
    channel = measurement.get(path, params={"channel": scenario.a, "as_of": AS_OF.isoformat()})
    assert channel.json()["totals"] == body["totals"]

    def error(params: dict[str, str], status: int) -> Any:
        response = measurement.get(path, params=params)
        assert response.status_code == status, response.text
        return response.json()["detail"]

    assert error({}, 422)[0]["loc"] == ["query", "campaign_id"]
    both = {"campaign_id": scenario.id("A"), "plan_id": scenario.id("P")}
    assert error(both, 422)[0]["loc"] == ["query", "plan_id"]
    assert error({"channel": scenario.a, "weeks": "0"}, 422)[0]["loc"] == ["query", "weeks"]
    assert "plan" in str(error({"plan_id": scenario.id("nope")}, 404))
    assert (
        measurement.get(path, params={"channel": "x"}, headers={"Authorization": ""}).status_code
        == 401
    )
