"""Sales plans and splits by past sales over HTTP on a real broker and SQL store: sale events
published to ``mrm.sales.v1`` reach planning's own totals (a repeated event counts once), a
brand target is split by its children's sales of that brand in a reference period to the cent,
campaigns plan an uplift against a unit, and the target tree shows each unit's baseline,
planned uplift and sales plan — figures by hand; the 422s name their field."""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest
from planning_kit import auth

from shared.events.ingest import SaleCompleted
from shared.publisher import EventPublisher
from shared.topics import PLANNING, SALES

pytestmark = pytest.mark.integration

CMO, MANAGER, VIEWER = auth("t-cmo"), auth("t-manager"), auth("t-viewer")


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def refused(response: httpx.Response, *, field: str) -> str:
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["field"] == field, error
    return str(error["msg"])


def _years(database_url: str) -> tuple[int, int]:
    # a company unit holds every sale on the topic: each backend's run (sharing a broker)
    # keeps its sales in a year of its own, so the company's figures are exactly this test's
    reference = 2043 if database_url.startswith("sqlite") else 2045
    return reference, reference + 1


def _nodes(tree: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}

    def walk(node: dict[str, Any]) -> None:
        found[node["unit"]["unit_id"]] = node
        for child in node["children"]:
            walk(child)

    for root in tree["roots"]:
        walk(root)
    return found


def _plan_figures(node: dict[str, Any]) -> tuple[str | None, str, str | None]:
    return node["baseline"], node["planned_uplift"], node["sales_plan"]


def test_sales_split_a_brand_target_and_campaigns_plan_uplift(
    planning: httpx.Client,
    kafka_bootstrap: str,
    topic_reader,  # type: ignore[no-untyped-def]
    unique_id: str,
    database_url: str,
) -> None:
    reference_year, year = _years(database_url)
    brand, other_brand = f"Acme {unique_id}", f"Other {unique_id}"

    def unit(name: str, kind: str, parent: str | None = None, code: str | None = None) -> str:
        body = {"name": name, "kind": kind, "owner": "nina", "parent_id": parent, "code": code}
        return ok(planning.post("/api/v1/sales-units", json=body, headers=CMO), 201)["unit_id"]

    company = unit("Acme", "company")
    north = unit("North", "region", company, f"N-{unique_id}")
    south = unit("South", "region", company, f"S-{unique_id}")
    ann = unit("Ann", "rep", north, f"rep-a-{unique_id}")
    bo = unit("Bo", "rep", north, f"rep-b-{unique_id}")
    cy = unit("Cy", "rep", north, f"rep-c-{unique_id}")
    dee = unit("Dee", "rep", south, f"rep-d-{unique_id}")

    sold = dt.datetime(reference_year, 2, 14, 10, tzinfo=dt.UTC)
    with EventPublisher(kafka_bootstrap, source="orders") as events:

        def sale(rep: str, amount: str, currency: str, sale_brand: str) -> Any:
            return events.publish(
                SaleCompleted(
                    order_id=f"o-{rep}-{amount}",
                    # one customer: one partition, so the last sale is consumed last
                    customer_id=f"cust-{unique_id}",
                    amount=Decimal(amount),
                    currency=currency,
                    rep_id=f"{rep}-{unique_id}",
                    brand=sale_brand,
                ),
                occurred_at=sold,
            )

        sale("rep-a", "300.00", "EUR", brand)
        repeated = sale("rep-b", "200.00", "EUR", brand)
        events.send_envelope(repeated, topic=SALES, key=f"cust-{unique_id}")  # counts once
        sale("rep-c", "200.00", "USD", brand)  # 0.5 EUR per USD: 100.00
        sale("rep-c", "500.00", "EUR", other_brand)  # not the brand's
        sale("rep-d", "70.00", "GBP", brand)  # no rate: kept apart

    period, reference = f"{year}-Q1", f"{reference_year}-Q1"
    tree_url = f"/api/v1/sales-targets?period={period}&brand={brand}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        nodes = _nodes(ok(planning.get(tree_url, headers=VIEWER)))
        if nodes[south]["unconverted"]:
            break
        time.sleep(0.3)
    assert nodes[south]["unconverted"] == {"GBP": "70.00"}, nodes[south]
    assert {unit_id: nodes[unit_id]["baseline"] for unit_id in (company, north, ann, bo, cy)} == {
        company: "600.00",
        north: "600.00",
        ann: "300.00",
        bo: "200.00",
        cy: "100.00",
    }

    # a brand target of the region, split by its reps' sales of the brand: 300 : 200 : 100
    target = ok(
        planning.post(
            "/api/v1/sales-targets",
            json={"unit_id": north, "period": period, "brand": brand, "amount": "1000.00"},
            headers=CMO,
        ),
        201,
    )
    split_url = f"/api/v1/sales-targets/{target['target_id']}/split"
    refused(
        planning.post(split_url, json={"method": "reference"}, headers=CMO),
        field="reference_period",
    )
    refused(
        planning.post(
            split_url,
            json={"method": "reference", "reference_period": f"{reference_year}-Q5"},
            headers=CMO,
        ),
        field="reference_period",
    )
    nothing = refused(
        planning.post(
            split_url,
            json={"method": "reference", "reference_period": f"{reference_year - 1}-Q1"},
            headers=CMO,
        ),
        field="reference_period",
    )
    assert "sold nothing" in nothing
    split = ok(
        planning.post(
            split_url, json={"method": "reference", "reference_period": reference}, headers=CMO
        )
    )
    amounts = {t["unit_id"]: t["amount"] for t in split}
    assert amounts == {ann: "500.01", bo: "333.33", cy: "166.66"}
    assert sum(Decimal(amount) for amount in amounts.values()) == Decimal("1000.00")
    assert {t["brand"] for t in split} == {brand}

    south_target = ok(
        planning.post(
            "/api/v1/sales-targets",
            json={"unit_id": south, "period": period, "brand": brand, "amount": "100.00"},
            headers=CMO,
        ),
        201,
    )
    no_rate = refused(
        planning.post(
            f"/api/v1/sales-targets/{south_target['target_id']}/split",
            json={"method": "reference", "reference_period": reference},
            headers=CMO,
        ),
        field="reference_period",
    )
    assert "GBP" in no_rate
    assert _nodes(ok(planning.get(tree_url, headers=VIEWER)))[dee]["target"] is None

    # campaigns plan uplift against units: phased by their days into the period
    plan = ok(
        planning.post(
            "/api/v1/plans",
            json={
                "name": f"FY{year}",
                "period_start": f"{year}-01-01",
                "period_end": f"{year}-12-31",
            },
            headers=MANAGER,
        ),
        201,
    )

    def campaign(name: str, unit_id: str, uplift: str, start: str, end: str, **more: str) -> str:
        body = {
            "name": name,
            "channel": "retail",
            "owner": "ann",
            "budget": "1000.00",
            "start_date": f"{year}-{start}",
            "end_date": f"{year}-{end}",
            "brand": brand,
            "sales_unit_id": unit_id,
            "planned_uplift": uplift,
            **more,
        }
        url = f"/api/v1/plans/{plan['plan_id']}/campaigns"
        return ok(planning.post(url, json=body, headers=MANAGER), 201)["campaign_id"]

    promo = campaign("Spring promo", ann, "1000.00", "03-20", "04-10")  # 12 + 10 days
    campaign("Region push", north, "300.00", "01-01", "01-31")
    dropped = campaign("Dropped", bo, "999.00", "01-01", "03-31")
    campaign("Other brand", cy, "200.00", "02-01", "02-28", brand=other_brand)
    ok(
        planning.patch(
            f"/api/v1/campaigns/{dropped}", json={"status": "cancelled"}, headers=MANAGER
        )
    )
    ok(planning.post(f"/api/v1/plans/{plan['plan_id']}/approve", headers=CMO))
    # an approved campaign's uplift moves no money: a manager's change applies at once
    changed = ok(
        planning.patch(
            f"/api/v1/campaigns/{promo}", json={"planned_uplift": "1100.00"}, headers=MANAGER
        )
    )
    assert (changed["planned_uplift"], changed["sales_unit_id"]) == ("1100.00", ann)

    brand_q1 = _nodes(ok(planning.get(tree_url, headers=VIEWER)))
    # 1100 × 12/22 = 600.00 in March; the region's own 300.00; the cancelled campaign and the
    # other brand's count nothing here
    assert {u: _plan_figures(brand_q1[u]) for u in (company, north, south, ann, bo, cy)} == {
        company: ("600.00", "900.00", "1500.00"),
        north: ("600.00", "900.00", "1500.00"),
        south: ("0.00", "0.00", "0.00"),
        ann: ("300.00", "600.00", "900.00"),
        bo: ("200.00", "0.00", "200.00"),
        cy: ("100.00", "0.00", "100.00"),
    }
    assert brand_q1[north]["currency"] == "EUR" and brand_q1[north]["gap"] == "0.00"
    all_brands = _nodes(ok(planning.get(f"/api/v1/sales-targets?period={period}", headers=VIEWER)))
    assert _plan_figures(all_brands[north]) == ("1100.00", "1100.00", "2200.00")
    assert _plan_figures(all_brands[cy]) == ("600.00", "200.00", "800.00")
    # April's 10 days: 500.00; nothing was sold a year before the second quarter
    brand_q2 = _nodes(
        ok(planning.get(f"/api/v1/sales-targets?period={year}-Q2&brand={brand}", headers=VIEWER))
    )
    assert _plan_figures(brand_q2[ann]) == (None, "500.00", None)

    def uplift_of(event_type: str) -> list[Any]:
        records = topic_reader(
            kafka_bootstrap,
            PLANNING,
            expect=1,
            match=lambda r: (
                json.loads(r.value)["event_type"] == event_type
                and json.loads(r.value)["data"]["campaign_id"] == promo
            ),
        )
        return [
            (data["sales_unit_id"], data["planned_uplift"])
            for data in (json.loads(record.value)["data"] for record in records)
        ]

    assert uplift_of("campaign.planned") == [(ann, "1000.00")]
    assert (ann, "1100.00") in uplift_of("campaign.updated")


def test_a_campaign_names_a_known_unit_for_its_uplift(planning: httpx.Client) -> None:
    plan = ok(
        planning.post(
            "/api/v1/plans",
            json={"name": "FY2040", "period_start": "2040-01-01", "period_end": "2040-12-31"},
            headers=MANAGER,
        ),
        201,
    )
    url = f"/api/v1/plans/{plan['plan_id']}/campaigns"
    body = {
        "name": "Promo",
        "channel": "retail",
        "owner": "ann",
        "budget": "100.00",
        "start_date": "2040-01-01",
        "end_date": "2040-01-31",
    }
    unknown = {**body, "sales_unit_id": "no-such-unit", "planned_uplift": "10.00"}
    assert "no-such-unit" in refused(
        planning.post(url, json=unknown, headers=MANAGER), field="sales_unit_id"
    )
    refused(
        planning.post(url, json={**body, "planned_uplift": "10.00"}, headers=MANAGER),
        field="sales_unit_id",
    )
    refused(
        planning.post(
            url, json={**body, "sales_unit_id": "x", "planned_uplift": "-1"}, headers=MANAGER
        ),
        field="planned_uplift",
    )
    created = ok(planning.post(url, json=body, headers=MANAGER), 201)
    assert (created["sales_unit_id"], created["planned_uplift"]) == (None, None)
    patch_url = f"/api/v1/campaigns/{created['campaign_id']}"
    refused(
        planning.patch(patch_url, json={"sales_unit_id": "nope"}, headers=MANAGER),
        field="sales_unit_id",
    )
    refused(
        planning.patch(patch_url, json={"planned_uplift": "5.00"}, headers=MANAGER),
        field="sales_unit_id",
    )
    unit = ok(
        planning.post(
            "/api/v1/sales-units",
            json={"name": "Co", "kind": "company", "owner": "carla"},
            headers=CMO,
        ),
        201,
    )
    both = {"sales_unit_id": unit["unit_id"], "planned_uplift": "5.00"}
    assert ok(planning.patch(patch_url, json=both, headers=MANAGER))["planned_uplift"] == "5.00"
    cleared = ok(
        planning.patch(
            patch_url, json={"sales_unit_id": None, "planned_uplift": None}, headers=MANAGER
        )
    )
    assert (cleared["sales_unit_id"], cleared["planned_uplift"]) == (None, None)
