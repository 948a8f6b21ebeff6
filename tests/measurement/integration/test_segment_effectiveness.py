"""Campaigns' target segments in the warehouse and segment effectiveness on chDB — stored from
the campaign events (rows written before migration 13 read as no target), and every compared
value computed by hand from one fixed event set.

The event set lives in 2087 (no other module uses that year), so a window on March 2087 sees
only its campaigns, even without a plan. Plan P is in EUR; plan Q in USD, 1 USD = 0.5 EUR.

=========  =====  ========  ======  ======  ===============  ======================
campaign   plan   channel   budget  margin  target segment   dates
=========  =====  ========  ======  ======  ===============  ======================
A          P      email     1000    0.5     rfm:champions    March
B          P      search    500     1.0     rfm:champions    March
C          P      social    400     1.0     lapsed           March
D          P      search    300     1.0     (none)           March
E          Q      email     200 $   1.0     rfm:champions    March
OLD        P      social    250     1.0     lapsed           January
=========  =====  ========  ======  ======  ===============  ======================
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal as D
from typing import Any

import httpx
import pytest
from clickhouse_connect.driver.client import Client
from scenario_kit import EventScenario, every_event

from services.measurement import effectiveness_api, warehouse
from services.measurement.warehouse import schema
from services.measurement.warehouse._dims import campaign_dims
from shared.events.ingest import LeadStageChanged, SaleCompleted, SpendRecorded
from shared.events.planning import CampaignPlanned, CampaignUpdated, PlanCreated
from shared.money import FxRates

pytestmark = pytest.mark.integration

Y = 2087
MARCH = dt.datetime(Y, 3, 1, tzinfo=dt.UTC)
APRIL = dt.datetime(Y, 4, 1, tzinfo=dt.UTC)
NOW = dt.datetime(Y, 3, 20, tzinfo=dt.UTC)
FX = FxRates(base="EUR", rates={"USD": D("0.5")})
TOKEN, MANAGER = "t-effectiveness-viewer", "t-effectiveness-manager"
CHAMPIONS, LAPSED = "rfm:champions", "lapsed"


def at(month: int, day: int) -> dt.datetime:
    """Noon UTC of a day of the scenario's year."""
    return dt.datetime(Y, month, day, 12, tzinfo=dt.UTC)


class Scenario(EventScenario):
    """The fixed event set."""

    def campaign(self, key: str, plan: str, channel: str, budget: str, margin: str, **kw: Any):  # type: ignore[no-untyped-def]
        currency = "USD" if plan == "Q" else "EUR"
        start, end = kw.pop("dates", (dt.date(Y, 3, 1), dt.date(Y, 3, 31)))
        data = CampaignPlanned(
            campaign_id=self.id(key),
            plan_id=self.id(plan),
            name=f"campaign {key}",
            channel=channel,
            owner="ann",
            budget=D(budget),
            currency=currency,
            gross_margin=D(margin),
            start_date=start,
            end_date=end,
            status="active",
            **kw,
        )
        return self.add(f"campaign-{key}", data, dt.datetime(Y - 1, 12, 1, tzinfo=dt.UTC))

    def spend(self, name: str, campaign: str, amount: str, when: dt.datetime) -> None:
        currency = "USD" if campaign == "E" else "EUR"
        data = SpendRecorded(
            campaign_id=self.id(campaign), channel="any", amount=D(amount), currency=currency
        )
        self.add(name, data, when)

    def lead(self, lead: str, campaign: str, stages: str, day: int, customer: str = "") -> None:
        for n, stage in enumerate(stages.split()):
            data = LeadStageChanged(
                lead_id=self.id(lead),
                campaign_id=self.id(campaign),
                channel="any",
                stage=stage,  # type: ignore[arg-type]
                customer_id=self.id(customer) if stage == "customer" else None,
            )
            self.add(f"{lead}-{campaign}-{stage}", data, at(3, day) + dt.timedelta(hours=n))

    def sale(self, name: str, customer: str, campaign: str, amount: str, when) -> None:  # type: ignore[no-untyped-def]
        data = SaleCompleted(
            order_id=self.id(name),
            customer_id=self.id(customer),
            campaign_id=self.id(campaign),
            amount=D(amount),
            currency="USD" if campaign == "E" else "EUR",
        )
        self.add(name, data, when)


def build(uid: str) -> Scenario:
    s = Scenario(uid)
    for plan, currency in (("P", "EUR"), ("Q", "USD")):
        data = PlanCreated(
            plan_id=s.id(plan),
            name=f"Plan {plan}",
            period_start=dt.date(Y, 1, 1),
            period_end=dt.date(Y, 12, 31),
            currency=currency,
            owner="cmo",
        )
        s.add(f"plan-{plan}", data, dt.datetime(Y - 1, 12, 1, tzinfo=dt.UTC))
    s.campaign("A", "P", "email", "1000", "0.5", target_segment=CHAMPIONS)
    s.campaign("B", "P", "search", "500", "1.0", target_segment=CHAMPIONS)
    s.campaign("C", "P", "social", "400", "1.0", target_segment=LAPSED)
    s.campaign("D", "P", "search", "300", "1.0")
    s.campaign("E", "Q", "email", "200", "1.0", target_segment=CHAMPIONS)
    january = (dt.date(Y, 1, 1), dt.date(Y, 1, 31))
    s.campaign("OLD", "P", "social", "250", "1.0", target_segment=LAPSED, dates=january)

    s.spend("sp-a", "A", "200.00", at(3, 2))
    s.spend("sp-a-feb", "A", "40.00", at(2, 20))  # before the period
    s.spend("sp-b", "B", "100.00", at(3, 3))
    s.spend("sp-c", "C", "50.00", at(3, 4))
    s.spend("sp-d", "D", "120.00", at(3, 5))
    s.spend("sp-e", "E", "80.00", at(3, 6))  # USD: 40 EUR
    s.spend("sp-old", "OLD", "70.00", at(1, 10))

    s.lead("L1", "A", "lead mql sql customer", 2, customer="K1")
    s.lead("L1", "B", "lead", 3)  # the same lead in two campaigns of a segment counts once
    s.lead("L2", "A", "lead mql", 4)
    s.lead("L3", "B", "lead", 5)
    s.lead("L4", "C", "lead mql sql", 6)
    s.lead("L5", "D", "lead customer", 7, customer="K3")
    s.lead("L6", "E", "lead", 8)

    s.sale("o1", "K1", "A", "300.00", at(3, 10))  # K1's first sale: new
    s.sale("o2", "K1", "B", "100.00", at(3, 20))  # not new
    s.sale("o3", "K2", "B", "200.00", at(3, 15))  # new
    s.sale("o4", "K3", "D", "500.00", at(3, 16))  # new
    s.sale("o5", "K4", "C", "40.00", at(2, 10))  # K4's first sale, in February
    s.sale("o6", "K4", "C", "60.00", at(3, 11))  # so not new in March
    s.sale("o7", "K5", "E", "100.00", at(3, 12))  # USD, new
    return s


@pytest.fixture(scope="module")
def scenario(warehouse_client: Client) -> Scenario:
    s = build(uuid.uuid4().hex[:10])
    s.insert(warehouse_client, redelivered=every_event)  # a replay changes nothing
    return s


def _by_segment(found: dict[str, Any] | None) -> dict[str | None, dict[str, Any]]:
    assert found is not None
    return {row["target_segment"]: row for row in found["segments"]}


def _figures(row: dict[str, Any]) -> dict[str, Any]:
    names = ("spend", "budget", "leads", "mql", "sql", "new_customers", "customers")
    more = ("revenue", "gross_profit", "cpl", "cac", "romi", "lead_to_customer")
    return {k: row[k] for k in (*names, *more)}


CHAMPIONS_EUR = {
    "spend": D("300.00"),
    "budget": D("1500.00"),
    "leads": 3,  # L1 (A and B), L2, L3
    "mql": 2,
    "sql": 1,
    "new_customers": 2,  # K1, K2
    "customers": 2,
    "revenue": D("600.00"),
    "gross_profit": D("450.00"),  # 300 × 0.5 + 100 + 200
    "cpl": D("100.00"),
    "cac": D("150.00"),
    "romi": D("0.500000"),  # (450 − 300) / 300
    "lead_to_customer": D("0.333333"),  # L1 of L1, L2, L3
}


def test_campaign_dims_carry_the_target_segment(
    warehouse_client: Client, scenario: Scenario
) -> None:
    ids = [scenario.id(k) for k in ("A", "D")]
    dims = campaign_dims(
        warehouse_client, where="campaign_id IN {ids:Array(String)}", params={"ids": ids}
    )
    assert [d["target_segment"] for d in dims] == [CHAMPIONS, None]
    # a later version retargets it
    again = Scenario(scenario.uid)
    data = CampaignUpdated(
        campaign_id=again.id("D"),
        plan_id=again.id("P"),
        name="campaign D",
        channel="search",
        owner="ann",
        budget=D("300"),
        currency="EUR",
        start_date=dt.date(Y, 3, 1),
        end_date=dt.date(Y, 3, 31),
        status="active",
        version=2,
        target_segment="rfm:loyal",
    )
    updated = again.add("campaign-D-v2", data, dt.datetime(Y, 3, 1, tzinfo=dt.UTC))
    assert warehouse.rows_by_table([updated])["campaigns"][0][-1] == "rfm:loyal"


def test_campaigns_stored_before_migration_13_read_no_target(
    warehouse_client: Client, unique_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = f"m_{unique_id}"
    s = Scenario(unique_id)
    event = s.campaign("X", "P", "email", "10", "1.0", target_segment=CHAMPIONS)
    (row,) = warehouse.rows_by_table([event])["campaigns"]
    columns = warehouse.COLUMNS["campaigns"]
    assert columns[-1] == "target_segment"
    try:
        with monkeypatch.context() as before:
            before.setattr(schema, "MIGRATIONS", [m for m in schema.MIGRATIONS if m[0] != 13])
            assert 13 not in warehouse.migrate(warehouse_client, database=db)
        warehouse_client.insert(f"{db}.campaigns", [row[:-1]], column_names=columns[:-1])
        assert warehouse.migrate(warehouse_client, database=db) == [13]
        assert warehouse.migrate(warehouse_client, database=db) == []
        found = warehouse_client.query(
            f"SELECT campaign_id, target_segment FROM {db}.campaigns"
        ).result_rows
        assert found == [(s.id("X"), "")]
        warehouse_client.insert(f"{db}.campaigns", [row], column_names=columns)
        found = warehouse_client.query(
            f"SELECT target_segment FROM {db}.campaigns FINAL"
        ).result_rows
        assert found == [(CHAMPIONS,)]
    finally:
        warehouse_client.command(f"DROP DATABASE IF EXISTS {db}")


def test_segments_side_by_side_in_one_currency(
    warehouse_client: Client, scenario: Scenario
) -> None:
    found = warehouse.segment_effectiveness(
        warehouse_client, fx=FX, start=MARCH, end=APRIL, now=NOW
    )
    assert found is not None
    assert (found["currency"], found["fx_rates"], found["missing_rates"]) == (
        "EUR",
        {"USD": D("0.5")},
        [],
    )
    assert [row["target_segment"] for row in found["segments"]] == [LAPSED, CHAMPIONS, None]
    rows = _by_segment(found)
    champions = rows[CHAMPIONS]
    assert [c["campaign_id"] for c in champions["campaigns"]] == [
        scenario.id(k) for k in ("A", "B", "E")
    ]
    assert champions["campaigns"][2]["currency"] == "USD"
    assert _figures(champions) == {
        "spend": D("340.00"),  # 200 + 100 + 80 $ × 0.5
        "budget": D("1600.00"),  # 1000 + 500 + 200 $ × 0.5
        "leads": 4,  # L1, L2, L3, L6
        "mql": 2,
        "sql": 1,
        "new_customers": 3,  # K1, K2, K5
        "customers": 3,
        "revenue": D("650.00"),  # 300 + 100 + 200 + 100 $ × 0.5
        "gross_profit": D("500.00"),  # 150 + 100 + 200 + 50
        "cpl": D("85.00"),  # 340 / 4
        "cac": D("113.33"),  # 340 / 3
        "romi": D("0.470588"),  # 160 / 340
        "lead_to_customer": D("0.250000"),  # L1 of four
    }
    assert sorted(champions["by_currency"]) == ["EUR", "USD"]
    assert champions["by_currency"]["EUR"] == CHAMPIONS_EUR
    assert champions["by_currency"]["USD"] == {
        "spend": D("80.00"),
        "budget": D("200.00"),
        "leads": 1,
        "mql": 0,
        "sql": 0,
        "new_customers": 1,
        "customers": 1,
        "revenue": D("100.00"),
        "gross_profit": D("100.00"),
        "cpl": D("80.00"),
        "cac": D("80.00"),
        "romi": D("0.250000"),
        "lead_to_customer": D("0.000000"),
    }
    # OLD ran in January: not a campaign of March
    assert [c["campaign_id"] for c in rows[LAPSED]["campaigns"]] == [scenario.id("C")]
    assert _figures(rows[LAPSED]) == {
        "spend": D("50.00"),
        "budget": D("400.00"),
        "leads": 1,
        "mql": 1,
        "sql": 1,
        "new_customers": 0,  # K4 first bought in February
        "customers": 1,
        "revenue": D("60.00"),
        "gross_profit": D("60.00"),
        "cpl": D("50.00"),
        "cac": None,
        "romi": D("0.200000"),
        "lead_to_customer": D("0.000000"),
    }
    assert _figures(rows[None]) == {
        "spend": D("120.00"),
        "budget": D("300.00"),
        "leads": 1,
        "mql": 1,  # L5 went straight to customer: it reached every stage before
        "sql": 1,
        "new_customers": 1,
        "customers": 1,
        "revenue": D("500.00"),
        "gross_profit": D("500.00"),
        "cpl": D("120.00"),
        "cac": D("120.00"),
        "romi": D("3.166667"),  # 380 / 120
        "lead_to_customer": D("1.000000"),
    }


def test_within_a_plan_over_the_whole_history(warehouse_client: Client, scenario: Scenario) -> None:
    in_march = warehouse.segment_effectiveness(
        warehouse_client, fx=FX, plan_id=scenario.id("P"), start=MARCH, end=APRIL, now=NOW
    )
    rows = _by_segment(in_march)
    assert in_march is not None and in_march["currency"] == "EUR"  # the plan's
    assert in_march["plan_id"] == scenario.id("P") and in_march["fx_rates"] == {}
    assert list(rows) == [LAPSED, CHAMPIONS, None]
    assert _figures(rows[CHAMPIONS]) == CHAMPIONS_EUR  # E is in plan Q
    assert list(rows[CHAMPIONS]["by_currency"]) == ["EUR"]

    whole = _by_segment(
        warehouse.segment_effectiveness(warehouse_client, fx=FX, plan_id=scenario.id("P"), now=NOW)
    )
    lapsed = whole[LAPSED]
    # in start order: OLD (January) before C (March)
    assert [c["campaign_id"] for c in lapsed["campaigns"]] == [scenario.id("OLD"), scenario.id("C")]
    assert (lapsed["spend"], lapsed["budget"], lapsed["revenue"]) == (
        D("120.00"),  # 50 + 70
        D("650.00"),  # 400 + 250
        D("100.00"),  # K4's 40 in February and 60 in March
    )
    assert (lapsed["new_customers"], lapsed["cac"]) == (1, D("120.00"))
    assert whole[CHAMPIONS]["spend"] == D("340.00")  # A's February spend counts too


def test_amounts_without_a_rate_are_null_and_named(
    warehouse_client: Client, scenario: Scenario
) -> None:
    no_usd = FxRates(base="EUR", rates={})
    found = warehouse.segment_effectiveness(
        warehouse_client, fx=no_usd, start=MARCH, end=APRIL, now=NOW
    )
    assert found is not None and found["missing_rates"] == ["USD"]
    rows = _by_segment(found)
    champions = rows[CHAMPIONS]
    assert champions["missing_rates"] == ["USD"]
    assert (champions["spend"], champions["cpl"], champions["romi"]) == (None, None, None)
    assert champions["leads"] == 4  # counts need no rate
    assert champions["by_currency"]["EUR"] == CHAMPIONS_EUR
    assert rows[LAPSED]["missing_rates"] == [] and rows[LAPSED]["spend"] == D("50.00")
    # in USD: each euro is worth 2 dollars
    in_usd = warehouse.segment_effectiveness(
        warehouse_client, fx=FX, currency="USD", start=MARCH, end=APRIL, now=NOW
    )
    assert in_usd is not None
    assert _by_segment(in_usd)[CHAMPIONS]["spend"] == D("680.00")  # 300 / 0.5 + 80


def test_unknown_plan_is_none(warehouse_client: Client, scenario: Scenario) -> None:
    assert (
        warehouse.segment_effectiveness(warehouse_client, fx=FX, plan_id=scenario.id("nope"))
        is None
    )


@pytest.fixture
def measurement(measurement_api) -> httpx.Client:  # type: ignore[no-untyped-def]
    return measurement_api(
        bearer=TOKEN,
        tokens={
            TOKEN: {"subject": "vic", "role": "viewer"},
            MANAGER: {"subject": "ann", "role": "manager"},
        },
        timeout=20,
        currency="EUR",
        fx_rates={"USD": "0.5"},
    )


def test_effectiveness_route(measurement: httpx.Client, scenario: Scenario) -> None:
    march = {"from": MARCH.isoformat(), "to": APRIL.isoformat()}
    answer = measurement.get("/api/v1/segments/effectiveness", params=march)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["currency"] == "EUR" and body["fx_rates"] == {"USD": "0.5"}
    assert [row["target_segment"] for row in body["segments"]] == [LAPSED, CHAMPIONS, None]
    champions = body["segments"][1]
    assert (champions["spend"], champions["cpl"], champions["romi"]) == (
        "340.00",
        "85.00",
        "0.470588",
    )
    assert champions["campaigns"][0] == {
        "campaign_id": scenario.id("A"),
        "plan_id": scenario.id("P"),
        "name": "campaign A",
        "channel": "email",
        "brand": None,
        "status": "active",
        "currency": "EUR",
        "start_date": f"{Y}-03-01",
        "end_date": f"{Y}-03-31",
    }
    in_plan = measurement.get(
        "/api/v1/segments/effectiveness", params={**march, "plan_id": scenario.id("Q")}
    ).json()
    assert in_plan["currency"] == "USD"  # the plan's
    assert [(r["target_segment"], r["spend"]) for r in in_plan["segments"]] == [
        (CHAMPIONS, "80.00")
    ]

    def refused(params: dict[str, str], status: int) -> Any:
        response = measurement.get("/api/v1/segments/effectiveness", params=params)
        assert response.status_code == status, response.text
        return response.json()["detail"][0].get("field")

    assert refused({"currency": "GBP"}, 422) == "currency"
    assert refused({"from": APRIL.isoformat(), "to": MARCH.isoformat()}, 422) == "to"
    assert refused({"from": "yesterday"}, 422) == "from"
    assert refused({"plan_id": scenario.id("nope")}, 404) is None
    assert "/api/v1/segments/effectiveness" in measurement.get("/openapi.json").json()["paths"]

    # a rule-based segment may not take the route's name: GET /segments/{id} could not read it
    taken = measurement.post(
        "/api/v1/segments",
        json={
            "segment_id": "effectiveness",
            "name": "Clash",
            "rule": {"conditions": [{"field": "industry", "op": "eq", "value": "tech"}]},
        },
        headers={"Authorization": f"Bearer {MANAGER}"},
    )
    assert taken.status_code == 422, taken.text
    assert taken.json()["detail"][0]["field"] == "segment_id"


def test_the_openapi_example_is_a_valid_answer() -> None:
    model = effectiveness_api.SegmentEffectiveness
    example = model.model_config["json_schema_extra"]["examples"][0]  # type: ignore[index]
    answer = model.model_validate(example)
    row = answer.segments[0]
    # its figures agree with each other: CPL, CAC, ROMI and lead → customer from the volumes
    assert row.spend is not None and row.gross_profit is not None
    assert (row.cpl, row.cac) == (row.spend / row.leads, row.spend / row.new_customers)
    assert row.romi == (row.gross_profit - row.spend) / row.spend
    assert row.lead_to_customer == D("0.333333")  # 1 of 3 leads
