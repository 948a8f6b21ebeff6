"""Discount limits over HTTP on a real broker and SQL store: a plan's, a line's and a
campaign's promo fund and maximum rate, 422s naming the field, roles (on an approved plan only
cmo or admin), the audit trail, ``discount_limit.set`` with its version."""

from __future__ import annotations

import json

import httpx
import pytest
from planning_kit import auth

from shared.topics import PLANNING

pytestmark = pytest.mark.integration

MANAGER, CMO, VIEWER = auth("t-manager"), auth("t-cmo"), auth("t-viewer")


def ok(response: httpx.Response, status: int = 200) -> dict:  # type: ignore[type-arg]
    assert response.status_code == status, response.text
    return response.json()  # type: ignore[no-any-return]


def test_limits_are_set_checked_audited_and_published(
    planning: httpx.Client, kafka_bootstrap: str, topic_reader, unique_id: str
) -> None:  # type: ignore[no-untyped-def]
    plan_id = ok(
        planning.post(
            "/api/v1/plans",
            json={
                "name": f"Promo {unique_id}",
                "period_start": "2027-01-01",
                "period_end": "2027-12-31",
            },
            headers=MANAGER,
        ),
        201,
    )["plan_id"]
    line_id = ok(
        planning.post(
            f"/api/v1/plans/{plan_id}/budget-lines",
            json={"name": "RetailCo", "partner": "retailco", "amount": "1000.00"},
            headers=MANAGER,
        ),
        201,
    )["line_id"]
    campaign_id = ok(
        planning.post(
            f"/api/v1/plans/{plan_id}/campaigns",
            json={
                "name": "Spring",
                "channel": "retail",
                "owner": "ann",
                "budget": "500.00",
                "start_date": "2027-03-01",
                "end_date": "2027-03-31",
                "line_id": line_id,
            },
            headers=MANAGER,
        ),
        201,
    )["campaign_id"]
    campaign_url = f"/api/v1/campaigns/{campaign_id}/discount-limit"

    never = ok(planning.get(campaign_url, headers=VIEWER))
    assert never == {
        "scope_kind": "campaign",
        "scope_id": campaign_id,
        "plan_id": plan_id,
        "promo_fund": None,
        "max_discount_rate": None,
        "currency": "EUR",
        "version": 0,
    }
    for body, field in (
        ({"max_discount_rate": "1.5"}, "max_discount_rate"),
        ({"max_discount_rate": "-0.1"}, "max_discount_rate"),
        ({"promo_fund": "-1"}, "promo_fund"),
        ({"promo_fund": "1.001"}, "promo_fund"),
        ({"fund": "1"}, "fund"),
    ):
        refused = planning.put(campaign_url, json=body, headers=MANAGER)
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"][0]["field"] == field
    assert planning.put(campaign_url, json={"promo_fund": "1"}, headers=VIEWER).status_code == 403
    assert ok(planning.get(campaign_url, headers=VIEWER))["version"] == 0  # nothing written
    assert (
        planning.put("/api/v1/campaigns/nope/discount-limit", json={}, headers=MANAGER).status_code
        == 404
    )

    campaign = ok(
        planning.put(
            campaign_url,
            json={"promo_fund": "200.00", "max_discount_rate": "0.15"},
            headers=MANAGER,
        )
    )
    assert (campaign["promo_fund"], campaign["max_discount_rate"], campaign["version"]) == (
        "200.00",
        "0.150000",
        1,
    )
    same = planning.put(
        campaign_url, json={"promo_fund": "200", "max_discount_rate": "0.15"}, headers=MANAGER
    )
    assert ok(same)["version"] == 1  # unchanged: no new version, no event
    line = ok(
        planning.put(
            f"/api/v1/budget-lines/{line_id}/discount-limit",
            json={"max_discount_rate": "0.25"},
            headers=MANAGER,
        )
    )
    assert (line["scope_kind"], line["promo_fund"], line["version"]) == ("line", None, 1)

    assert ok(planning.post(f"/api/v1/plans/{plan_id}/approve", headers=CMO))
    plan_url = f"/api/v1/plans/{plan_id}/discount-limit"
    late = planning.put(plan_url, json={"promo_fund": "5000"}, headers=MANAGER)
    assert late.status_code == 403, late.text
    plan = ok(planning.put(plan_url, json={"promo_fund": "5000"}, headers=CMO))
    assert (plan["promo_fund"], plan["version"]) == ("5000.00", 1)
    cleared = ok(planning.put(campaign_url, json={}, headers=CMO))
    assert (cleared["promo_fund"], cleared["max_discount_rate"], cleared["version"]) == (
        None,
        None,
        2,
    )

    audit = ok(planning.get("/api/v1/audit", params={"entity_id": campaign_id}, headers=VIEWER))
    limits = [entry for entry in audit if entry["entity_type"] == "discount_limit"]
    assert [(entry["action"], entry["actor"]) for entry in limits] == [
        ("set", "carla"),
        ("set", "ann"),
    ]

    def ours(record) -> bool:  # type: ignore[no-untyped-def]
        event = json.loads(record.value)
        return event["event_type"] == "discount_limit.set" and event["data"]["plan_id"] == plan_id

    events = [
        json.loads(r.value)["data"]
        for r in topic_reader(kafka_bootstrap, PLANNING, match=ours, expect=4)
    ]
    assert [(e["scope_kind"], e["version"]) for e in events] == [
        ("campaign", 1),
        ("line", 1),
        ("plan", 1),
        ("campaign", 2),
    ]
    assert events[0] == {
        "scope_kind": "campaign",
        "scope_id": campaign_id,
        "plan_id": plan_id,
        "promo_fund": "200.00",
        "max_discount_rate": "0.150000",
        "currency": "EUR",
        "version": 1,
    }
