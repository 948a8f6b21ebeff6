"""Planning over HTTP on a real broker and real SQL stores: state, events, roles, bad input."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import httpx
import pytest
from planning_kit import auth

from shared.events.kpi import BudgetReallocationProposed
from shared.publisher import EventPublisher
from shared.topics import KPI, PLANNING

pytestmark = pytest.mark.integration


def test_plan_campaign_stage_target_are_stored_and_published(
    planning: httpx.Client, kafka_bootstrap: str, topic_reader
) -> None:  # type: ignore[no-untyped-def]
    plan = planning.post(
        "/api/v1/plans",
        json={"name": "FY2027", "period_start": "2027-01-01", "period_end": "2027-12-31"},
        headers=auth("t-manager"),
    )
    assert plan.status_code == 201, plan.text
    plan_id = plan.json()["plan_id"]
    assert plan.json()["currency"] == "EUR" and plan.json()["owner"] == "ann"

    campaign = planning.post(
        f"/api/v1/plans/{plan_id}/campaigns",
        json={
            "name": "Spring search",
            "channel": "Search",
            "owner": "ann",
            "budget": "1000.00",
            "start_date": "2027-03-01",
            "end_date": "2027-05-31",
            "gross_margin": "0.4",
        },
        headers=auth("t-manager"),
    )
    assert campaign.status_code == 201, campaign.text
    campaign_id = campaign.json()["campaign_id"]
    assert campaign.json()["channel"] == "search"

    stage = planning.post(
        f"/api/v1/campaigns/{campaign_id}/stages",
        json={"name": "Creatives", "deadline": "2027-03-10T17:00:00+01:00", "assignee": "bob"},
        headers=auth("t-manager"),
    )
    assert stage.status_code == 201, stage.text
    assert stage.json()["deadline"].startswith("2027-03-10T16:00:00")

    target = planning.post(
        f"/api/v1/campaigns/{campaign_id}/kpi-targets",
        json={"kpi": "cpl", "target": "25", "weight": "2"},
        headers=auth("t-manager"),
    )
    assert target.status_code == 201, target.text
    assert target.json()["direction"] == "lower_is_better"

    approved = planning.post(f"/api/v1/plans/{plan_id}/approve", headers=auth("t-cmo"))
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert approved.json()["campaigns"][0]["status"] == "approved"

    def mine(record) -> bool:  # type: ignore[no-untyped-def]
        text = record.value.decode()
        return plan_id in text or campaign_id in text

    records = topic_reader(kafka_bootstrap, PLANNING, match=mine, expect=8)
    types = [json.loads(r.value)["event_type"] for r in records]
    assert sorted(types) == sorted(
        [
            "plan.created",
            "reallocation_rule.set",  # the plan's default rule
            "campaign.planned",
            "budget.allocated",
            "stage.scheduled",
            "kpi_target.set",
            "plan.approved",
            "campaign.status_changed",
        ]
    )
    planned = next(
        json.loads(r.value)
        for r in records
        if json.loads(r.value)["event_type"] == "campaign.planned"
    )
    assert planned["data"]["budget"] == "1000.00"
    assert planned["data"]["gross_margin"] == "0.4"
    assert planned["source"] == "planning"
    assert {r.key for r in records if json.loads(r.value)["event_type"] == "stage.scheduled"} == {
        campaign_id.encode()
    }


def test_roles_are_enforced(planning: httpx.Client) -> None:
    body = {"name": "P", "period_start": "2027-01-01", "period_end": "2027-12-31"}
    assert planning.post("/api/v1/plans", json=body).status_code == 401
    assert planning.post("/api/v1/plans", json=body, headers=auth("nope")).status_code == 401
    assert planning.post("/api/v1/plans", json=body, headers=auth("t-viewer")).status_code == 403
    plan_id = planning.post("/api/v1/plans", json=body, headers=auth("t-admin")).json()["plan_id"]
    assert planning.get(f"/api/v1/plans/{plan_id}", headers=auth("t-viewer")).status_code == 200
    assert (
        planning.post(f"/api/v1/plans/{plan_id}/approve", headers=auth("t-manager")).status_code
        == 403
    )


def test_bad_input_names_the_field_and_writes_nothing(planning: httpx.Client) -> None:
    bad = planning.post(
        "/api/v1/plans",
        json={"name": "P", "period_start": "2027-12-31", "period_end": "2027-01-01"},
        headers=auth("t-admin"),
    )
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "period_end"]
    assert planning.get("/api/v1/plans", headers=auth("t-admin")).json() == [] or all(
        p["name"] != "P" or p["period_start"] != "2027-12-31"
        for p in planning.get("/api/v1/plans", headers=auth("t-admin")).json()
    )

    plan_id = planning.post(
        "/api/v1/plans",
        json={"name": "Q", "period_start": "2027-01-01", "period_end": "2027-12-31"},
        headers=auth("t-admin"),
    ).json()["plan_id"]
    negative = planning.post(
        f"/api/v1/plans/{plan_id}/campaigns",
        json={
            "name": "C",
            "channel": "email",
            "owner": "ann",
            "budget": "-5",
            "start_date": "2027-01-01",
            "end_date": "2027-02-01",
        },
        headers=auth("t-admin"),
    )
    assert negative.status_code == 422
    assert negative.json()["detail"][0]["field"] == "budget"
    outside = planning.post(
        f"/api/v1/plans/{plan_id}/campaigns",
        json={
            "name": "C",
            "channel": "email",
            "owner": "ann",
            "budget": "5",
            "start_date": "2026-01-01",
            "end_date": "2027-02-01",
        },
        headers=auth("t-admin"),
    )
    assert outside.status_code == 422
    assert outside.json()["detail"][0]["loc"] == ["body", "start_date"]
    unknown = planning.post(
        f"/api/v1/plans/{plan_id}/campaigns",
        json={
            "name": "C",
            "channel": "email",
            "owner": "ann",
            "budget": "5",
            "colour": "red",
            "start_date": "2027-01-01",
            "end_date": "2027-02-01",
        },
        headers=auth("t-admin"),
    )
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["field"] == "colour"
    assert planning.get(f"/api/v1/plans/{plan_id}/campaigns", headers=auth("t-admin")).json() == []
    assert planning.get("/api/v1/campaigns/missing", headers=auth("t-admin")).status_code == 404


def plan_with_campaigns(
    planning: httpx.Client, name: str, campaigns: tuple[str, ...], *, channel: str, budget: str
) -> tuple[str, list[str]]:
    """A plan (created by the CMO) with one campaign per name, Jan–Jun 2027: their ids."""
    plan_id = planning.post(
        "/api/v1/plans",
        json={"name": name, "period_start": "2027-01-01", "period_end": "2027-12-31"},
        headers=auth("t-cmo"),
    ).json()["plan_id"]
    ids = [
        planning.post(
            f"/api/v1/plans/{plan_id}/campaigns",
            json={
                "name": campaign,
                "channel": channel,
                "owner": "ann",
                "budget": budget,
                "start_date": "2027-01-01",
                "end_date": "2027-06-30",
            },
            headers=auth("t-cmo"),
        ).json()["campaign_id"]
        for campaign in campaigns
    ]
    return plan_id, ids


def test_budget_reallocation_moves_money_between_campaigns(
    planning: httpx.Client, kafka_bootstrap: str, topic_reader
) -> None:  # type: ignore[no-untyped-def]
    plan_id, ids = plan_with_campaigns(planning, "R", ("A", "B"), channel="social", budget="500.00")
    body = {
        "from_campaign_id": ids[0],
        "to_campaign_id": ids[1],
        "amount": "120.50",
        "reason": "B converts better",
    }
    assert (
        planning.post(
            "/api/v1/budget-reallocations", json=body, headers=auth("t-manager")
        ).status_code
        == 403
    )
    too_much = planning.post(
        "/api/v1/budget-reallocations", json={**body, "amount": "900"}, headers=auth("t-cmo")
    )
    assert too_much.status_code == 422 and too_much.json()["detail"][0]["loc"] == ["body", "amount"]
    moved = planning.post("/api/v1/budget-reallocations", json=body, headers=auth("t-cmo"))
    assert moved.status_code == 201, moved.text
    budgets = {
        c["campaign_id"]: c["budget"]
        for c in planning.get(f"/api/v1/plans/{plan_id}/campaigns", headers=auth("t-cmo")).json()
    }
    assert budgets == {ids[0]: "379.50", ids[1]: "620.50"}
    records = topic_reader(
        kafka_bootstrap,
        PLANNING,
        expect=1,
        match=lambda r: (
            json.loads(r.value)["event_type"] == "budget.reallocated"
            and json.loads(r.value)["data"]["plan_id"] == plan_id
        ),
    )
    data = json.loads(records[0].value)["data"]
    assert (data["from_budget"], data["to_budget"], data["amount"]) == (
        "379.50",
        "620.50",
        "120.50",
    )


def test_measurement_proposals_are_listed_and_accepted_once(
    planning: httpx.Client, kafka_bootstrap: str, topic_reader
) -> None:  # type: ignore[no-untyped-def]
    plan_id, (under, over, other) = plan_with_campaigns(
        planning, "P", ("Under", "Over", "Other"), channel="search", budget="1000.00"
    )
    proposed = BudgetReallocationProposed(
        plan_id=plan_id,
        from_campaign_id=under,
        to_campaign_id=over,
        amount=Decimal("160.00"),
        reason="Under scores CKPI 50, Over 150",
    )
    with EventPublisher(kafka_bootstrap, source="measurement") as events:
        envelope = events.publish(proposed)
        events.send_envelope(envelope, topic=KPI, key=plan_id)  # re-delivered: recorded once

    path = f"/api/v1/plans/{plan_id}/reallocation-proposals"
    deadline = time.monotonic() + 30
    listed: list = []
    while not listed and time.monotonic() < deadline:
        listed = planning.get(path, headers=auth("t-viewer")).json()
        time.sleep(0.2)
    time.sleep(1)  # the duplicate has surely been consumed by now (same partition, later offset)
    listed = planning.get(path, headers=auth("t-viewer")).json()
    assert [(p["proposal_id"], p["status"], p["amount"]) for p in listed] == [
        (str(envelope.event_id), "open", "160.00")
    ]

    def accept(**body: str) -> httpx.Response:
        return planning.post(
            "/api/v1/budget-reallocations",
            json={"proposal_id": str(envelope.event_id), **body},
            headers=auth("t-cmo"),
        )

    wrong = accept(to_campaign_id=other)
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["field"] == "to_campaign_id"
    assert accept().status_code == 201
    again = accept()
    assert again.status_code == 422 and again.json()["detail"][0]["field"] == "proposal_id"
    missing = planning.post(
        "/api/v1/budget-reallocations",
        json={"from_campaign_id": under, "to_campaign_id": over},
        headers=auth("t-cmo"),
    )
    assert missing.status_code == 422 and missing.json()["detail"][0]["field"] == "amount"

    assert [p["status"] for p in planning.get(path, headers=auth("t-viewer")).json()] == [
        "accepted"
    ]
    budgets = {
        c["campaign_id"]: c["budget"]
        for c in planning.get(f"/api/v1/plans/{plan_id}/campaigns", headers=auth("t-cmo")).json()
    }
    assert budgets == {under: "840.00", over: "1160.00", other: "1000.00"}
    [moved] = topic_reader(
        kafka_bootstrap,
        PLANNING,
        expect=1,
        match=lambda r: (
            json.loads(r.value)["event_type"] == "budget.reallocated"
            and json.loads(r.value)["data"]["plan_id"] == plan_id
        ),
    )
    assert json.loads(moved.value)["data"]["reason"] == "Under scores CKPI 50, Over 150"
