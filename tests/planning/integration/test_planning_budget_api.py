"""Budget lines over HTTP on a real broker and SQL store: the tree under the plan's cap, 422s
that name the field and the amount still available and write nothing, roles on an approved
plan, the events, and actual spend from ``mrm.spend.v1`` in the budget view."""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal

import httpx
import pytest
from planning_kit import auth

from shared.events.ingest import SpendRecorded
from shared.publisher import EventPublisher
from shared.topics import PLANNING

pytestmark = pytest.mark.integration


def created(response: httpx.Response) -> dict:  # type: ignore[type-arg]
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def refused(response: httpx.Response, *, status: int, field: str) -> dict:  # type: ignore[type-arg]
    assert response.status_code == status, response.text
    [error] = response.json()["detail"]
    assert error["field"] == field, error
    return error  # type: ignore[no-any-return]


def test_lines_nest_under_the_cap_and_the_view_shows_planned_committed_actual(
    planning: httpx.Client, kafka_bootstrap: str, topic_reader
) -> None:  # type: ignore[no-untyped-def]
    manager, cmo = auth("t-manager"), auth("t-cmo")
    plan = created(
        planning.post(
            "/api/v1/plans",
            json={
                "name": "FY2027 trade",
                "period_start": "2027-01-01",
                "period_end": "2027-06-30",
                "budget": "100000.00",
            },
            headers=manager,
        )
    )
    plan_id = plan["plan_id"]
    assert plan["budget"] == "100000.00"
    lines = f"/api/v1/plans/{plan_id}/budget-lines"
    brand = created(
        planning.post(
            lines, json={"name": "Brand A", "brand": "A", "amount": "60000.00"}, headers=manager
        )
    )
    assert brand["phased_evenly"] and brand["months"]["2027-01"] == "10000.00"
    partner = created(
        planning.post(
            lines,
            json={
                "name": "Brand A at RetailCo",
                "parent_id": brand["line_id"],
                "partner": "RetailCo",
                "region": "North",
                "amount": "25000.00",
                "months": {"2027-03": "15000.00", "2027-04": "10000.00"},
            },
            headers=manager,
        )
    )
    assert not partner["phased_evenly"] and partner["months"]["2027-01"] == "0.00"

    def counts() -> tuple[int, int]:
        listed = planning.get(lines, headers=manager).json()
        campaigns = planning.get(f"/api/v1/plans/{plan_id}/campaigns", headers=manager).json()
        return len(listed), len(campaigns)

    before = counts()
    over_parent = planning.post(
        lines,
        json={"name": "Brand A at ShopCo", "parent_id": brand["line_id"], "amount": "35000.01"},
        headers=manager,
    )
    assert refused(over_parent, status=422, field="amount")["ctx"] == {"available": "35000.00"}
    over_cap = planning.post(lines, json={"name": "Brand B", "amount": "40000.01"}, headers=manager)
    assert refused(over_cap, status=422, field="amount")["ctx"] == {"available": "40000.00"}
    bad_months = planning.post(
        lines,
        json={"name": "Brand B", "amount": "100.00", "months": {"2027-07": "100.00"}},
        headers=manager,
    )
    refused(bad_months, status=422, field="months")

    def campaign(name: str, amount: str, line_id: str | None) -> httpx.Response:
        return planning.post(
            f"/api/v1/plans/{plan_id}/campaigns",
            json={
                "name": name,
                "channel": "retail",
                "owner": "ann",
                "budget": amount,
                "start_date": "2027-03-01",
                "end_date": "2027-04-30",
                "line_id": line_id,
            },
            headers=manager,
        )

    promo = created(campaign("Spring promo", "20000.00", partner["line_id"]))
    assert promo["line_id"] == partner["line_id"]
    refused(campaign("Too much", "5000.01", partner["line_id"]), status=422, field="budget")
    refused(campaign("Nowhere", "1.00", "no-such-line"), status=422, field="line_id")
    assert counts() == (before[0], before[1] + 1)  # only the promo was written

    # the cap cannot drop below what the plan's lines take; lines cannot shrink below theirs
    refused(
        planning.patch(f"/api/v1/plans/{plan_id}", json={"budget": "59999.99"}, headers=manager),
        status=422,
        field="budget",
    )
    refused(
        planning.patch(
            f"/api/v1/budget-lines/{partner['line_id']}",
            json={"amount": "19999.99", "months": None},
            headers=manager,
        ),
        status=422,
        field="amount",
    )

    approved = planning.post(f"/api/v1/plans/{plan_id}/approve", headers=cmo)
    assert approved.status_code == 200, approved.text
    refused(
        planning.post(lines, json={"name": "Late", "amount": "1.00"}, headers=manager),
        status=403,
        field=None,  # type: ignore[arg-type]
    )
    spare = created(planning.post(lines, json={"name": "Spare", "amount": "1000.00"}, headers=cmo))
    assert (
        planning.delete(f"/api/v1/budget-lines/{brand['line_id']}", headers=cmo).status_code == 409
    )
    assert (
        planning.delete(f"/api/v1/budget-lines/{spare['line_id']}", headers=cmo).status_code == 204
    )
    assert planning.get(f"/api/v1/budget-lines/{spare['line_id']}", headers=cmo).status_code == 404

    march = dt.datetime(2027, 3, 15, 12, tzinfo=dt.UTC)
    april = dt.datetime(2027, 4, 2, 9, tzinfo=dt.UTC)
    with EventPublisher(kafka_bootstrap, source="ads") as events:
        for amount, currency, when in (
            ("1200.00", "EUR", march),
            ("300.00", "EUR", april),
            ("100.00", "USD", april),  # 0.5 EUR per USD: 50.00
            ("70.00", "GBP", april),  # no rate: shown apart
        ):
            sent = events.publish(
                SpendRecorded(
                    campaign_id=promo["campaign_id"],
                    channel="retail",
                    amount=Decimal(amount),
                    currency=currency,
                ),
                occurred_at=when,
            )
        events.send_envelope(sent, topic="mrm.spend.v1", key=promo["campaign_id"])  # a repeat

    view: dict = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        view = planning.get(f"/api/v1/plans/{plan_id}/budget", headers=auth("t-viewer")).json()
        if view["unconverted"]:
            break
        time.sleep(0.3)
    time.sleep(1)  # the repeat, later on the same partition, has surely been consumed by now
    view = planning.get(f"/api/v1/plans/{plan_id}/budget", headers=auth("t-viewer")).json()
    assert view["unconverted"] == {"GBP": "70.00"}, view
    root = view["total"]
    assert view["currency"] == "EUR" and view["months"][0] == "2027-01" and len(view["months"]) == 6
    assert (root["planned"], root["committed"], root["actual"], root["remaining"]) == (
        "100000.00",
        "20000.00",
        "1550.00",
        "98450.00",
    )
    assert (root["taken"], root["available"]) == ("60000.00", "40000.00")
    [brand_node] = root["lines"]
    [partner_node] = brand_node["lines"]
    assert (brand_node["planned"], brand_node["committed"], brand_node["actual"]) == (
        "60000.00",
        "20000.00",
        "1550.00",
    )
    assert partner_node["campaign_ids"] == [promo["campaign_id"]]
    assert partner_node["available"] == "5000.00"
    # 31 days in March, 30 in April: 20,000 committed as 10,163.94 + 9,836.06 (the cent
    # the rounding leaves goes to the first month)
    assert partner_node["months"]["2027-03"] == {
        "planned": "15000.00",
        "committed": "10163.94",
        "actual": "1200.00",
        "remaining": "13800.00",
    }
    assert partner_node["months"]["2027-04"]["actual"] == "350.00"

    def announced(record) -> bool:  # type: ignore[no-untyped-def]
        event = json.loads(record.value)
        return event["event_type"] == "budget_line.set" and event["data"]["plan_id"] == plan_id

    published = [
        json.loads(r.value)["data"]
        for r in topic_reader(kafka_bootstrap, PLANNING, match=announced, expect=3)
    ]
    assert sorted(d["name"] for d in published) == ["Brand A", "Brand A at RetailCo", "Spare"]
    assert next(d for d in published if d["name"] == "Brand A at RetailCo")["months"] == {
        "2027-03": "15000.00",
        "2027-04": "10000.00",
    }


def test_moves_between_campaigns_and_lines_give_only_unspent_money(
    planning: httpx.Client, kafka_bootstrap: str, topic_reader
) -> None:  # type: ignore[no-untyped-def]
    manager, cmo = auth("t-manager"), auth("t-cmo")
    plan_id = created(
        planning.post(
            "/api/v1/plans",
            json={
                "name": "Moves",
                "period_start": "2027-01-01",
                "period_end": "2027-06-30",
                "budget": "10000.00",
            },
            headers=manager,
        )
    )["plan_id"]
    lines = f"/api/v1/plans/{plan_id}/budget-lines"
    line_a = created(planning.post(lines, json={"name": "A", "amount": "4000.00"}, headers=manager))
    line_b = created(
        planning.post(
            lines,
            json={
                "name": "B",
                "amount": "3000.00",
                "months": {"2027-01": "1000.00", "2027-02": "2000.00"},
            },
            headers=manager,
        )
    )

    def campaign(name: str, amount: str) -> str:
        return created(
            planning.post(
                f"/api/v1/plans/{plan_id}/campaigns",
                json={
                    "name": name,
                    "channel": "search",
                    "owner": "ann",
                    "budget": amount,
                    "start_date": "2027-01-01",
                    "end_date": "2027-03-31",
                    "line_id": line_a["line_id"],
                },
                headers=manager,
            )
        )["campaign_id"]

    spender, other = campaign("Spender", "2500.00"), campaign("Other", "500.00")
    assert planning.post(f"/api/v1/plans/{plan_id}/approve", headers=cmo).status_code == 200
    with EventPublisher(kafka_bootstrap, source="ads") as events:
        events.publish(
            SpendRecorded(
                campaign_id=spender, channel="search", amount=Decimal("2000.00"), currency="EUR"
            ),
            occurred_at=dt.datetime(2027, 1, 20, tzinfo=dt.UTC),
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        view = planning.get(f"/api/v1/plans/{plan_id}/budget", headers=cmo).json()
        if view["total"]["actual"] == "2000.00":
            break
        time.sleep(0.3)
    assert view["total"]["actual"] == "2000.00", view

    def move(**body: str) -> httpx.Response:
        return planning.post("/api/v1/budget-reallocations", json=body, headers=cmo)

    # a campaign gives its unspent budget only: 2,500 − 2,000 spent
    too_much = move(from_campaign_id=spender, to_campaign_id=other, amount="500.01")
    assert refused(too_much, status=422, field="amount")["ctx"] == {"available": "500.00"}
    assert move(from_campaign_id=spender, to_campaign_id=other, amount="500.00").status_code == 201
    # a line gives what is neither spent nor held by its campaigns: 4,000 − 3,000
    assert refused(
        move(from_line_id=line_a["line_id"], to_line_id=line_b["line_id"], amount="1000.01"),
        status=422,
        field="amount",
    )["ctx"] == {"available": "1000.00"}
    refused(
        move(from_line_id=line_a["line_id"], to_campaign_id=other, amount="1.00"),
        status=422,
        field="to_campaign_id",
    )
    lines_move = move(
        from_line_id=line_a["line_id"],
        to_line_id=line_b["line_id"],
        amount="600.00",
        reason="B sells",
    )
    assert lines_move.status_code == 201, lines_move.text
    after_b = planning.get(f"/api/v1/budget-lines/{line_b['line_id']}", headers=cmo).json()
    assert after_b["amount"] == "3600.00"
    # phased by hand: the 600 spread over the months ahead (the plan has not begun: all six)
    assert [after_b["months"][m] for m in ("2027-01", "2027-02", "2027-03", "2027-06")] == [
        "1100.00",
        "2100.00",
        "100.00",
        "100.00",
    ]
    assert (
        planning.get(f"/api/v1/budget-lines/{line_a['line_id']}", headers=cmo).json()["amount"]
        == "3400.00"
    )

    history = planning.get(
        f"/api/v1/plans/{plan_id}/reallocations", headers=auth("t-viewer")
    ).json()
    assert [(h["kind"], h["amount"], h["source"], h["requested_by"]) for h in history] == [
        ("lines", "600.00", "manual", "carla"),
        ("campaigns", "500.00", "manual", "carla"),
    ]
    assert history[0]["reason"] == "B sells" and history[0]["from_id"] == line_a["line_id"]
    [moved] = topic_reader(
        kafka_bootstrap,
        PLANNING,
        expect=1,
        match=lambda r: (
            json.loads(r.value)["event_type"] == "budget_line.reallocated"
            and json.loads(r.value)["data"]["plan_id"] == plan_id
        ),
    )
    assert json.loads(moved.value)["data"]["to_amount"] == "3600.00"
