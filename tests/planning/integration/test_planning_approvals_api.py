"""Campaign approval over HTTP on a real broker and SQL store: the lifecycle and who may move
it, change requests to approved campaigns (the approved values stand until accepted, and are
all other services see), and the audit log."""

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


def field_of(response: httpx.Response, status: int) -> str | None:
    assert response.status_code == status, response.text
    return response.json()["detail"][0].get("field")  # type: ignore[no-any-return]


def test_lifecycle_change_requests_and_audit(
    planning: httpx.Client, kafka_bootstrap: str, topic_reader
) -> None:  # type: ignore[no-untyped-def]
    plan_id = ok(
        planning.post(
            "/api/v1/plans",
            json={"name": "FY27", "period_start": "2027-01-01", "period_end": "2027-12-31"},
            headers=MANAGER,
        ),
        201,
    )["plan_id"]
    line_id = ok(
        planning.post(
            f"/api/v1/plans/{plan_id}/budget-lines",
            json={"name": "Brand A", "amount": "1000.00"},
            headers=MANAGER,
        ),
        201,
    )["line_id"]
    ok(planning.post(f"/api/v1/plans/{plan_id}/approve", headers=CMO))

    def new_campaign(name: str, budget: str) -> dict:  # type: ignore[type-arg]
        return ok(
            planning.post(
                f"/api/v1/plans/{plan_id}/campaigns",
                json={
                    "name": name,
                    "channel": "search",
                    "owner": "ann",
                    "budget": budget,
                    "start_date": "2027-03-01",
                    "end_date": "2027-04-30",
                    "line_id": line_id,
                },
                headers=MANAGER,
            ),
            201,
        )

    campaign = new_campaign("Spring", "600.00")
    assert campaign["status"] == "draft"  # added to an approved plan: a draft, not approved
    cid = campaign["campaign_id"]
    path = f"/api/v1/campaigns/{cid}"

    assert planning.post(f"{path}/approve", headers=MANAGER).status_code == 403
    assert ok(planning.post(f"{path}/submit", headers=MANAGER))["status"] == "submitted"
    assert field_of(planning.post(f"{path}/reject", json={}, headers=CMO), 422) == "reason"
    rejected = ok(planning.post(f"{path}/reject", json={"reason": "CPL too high"}, headers=CMO))
    assert rejected["status"] == "rejected"
    assert field_of(planning.post(f"{path}/approve", headers=CMO), 409) == "status"
    assert ok(planning.patch(path, json={"status": "draft"}, headers=MANAGER))["status"] == "draft"
    ok(planning.post(f"{path}/submit", headers=MANAGER))
    assert ok(planning.post(f"{path}/approve", headers=CMO))["status"] == "approved"

    # a manager's change of budget and name: the name at once, the budget as a request
    changed = planning.patch(path, json={"name": "Spring 2", "budget": "900.00"}, headers=MANAGER)
    assert changed.status_code == 202, changed.text
    body = changed.json()
    assert (body["name"], body["budget"]) == ("Spring 2", "600.00")
    [first] = body["change_requests"]
    assert first["changes"] == {"budget": "900.00"} and first["status"] == "open"
    # a request that could never be applied is refused at once, and supersedes nothing
    assert field_of(planning.patch(path, json={"budget": "1000.01"}, headers=MANAGER), 422) == (
        "budget"
    )
    # a newer request supersedes the open one
    second = planning.patch(path, json={"end_date": "2027-05-31"}, headers=MANAGER)
    assert second.status_code == 202, second.text
    [open_request] = second.json()["change_requests"]
    statuses = {
        r["request_id"]: r["status"]
        for r in ok(planning.get(f"{path}/change-requests", headers=VIEWER))
    }
    assert statuses == {first["request_id"]: "superseded", open_request["request_id"]: "open"}
    decide = f"/api/v1/change-requests/{open_request['request_id']}"
    assert planning.post(f"{decide}/accept", headers=MANAGER).status_code == 403
    accepted = ok(planning.post(f"{decide}/accept", headers=CMO))
    assert (accepted["end_date"], accepted["budget"], accepted["change_requests"]) == (
        "2027-05-31",
        "600.00",
        [],
    )
    assert field_of(planning.post(f"{decide}/accept", headers=CMO), 409) == "request_id"

    # accepting checks the budget as it is then: another campaign took part of the line
    raise_to = planning.patch(path, json={"budget": "900.00"}, headers=MANAGER).json()
    [raising] = raise_to["change_requests"]
    new_campaign("Summer", "300.00")
    refused = planning.post(f"/api/v1/change-requests/{raising['request_id']}/accept", headers=CMO)
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"][0]["ctx"] == {"available": "700.00"}
    declined = ok(
        planning.post(
            f"/api/v1/change-requests/{raising['request_id']}/reject",
            json={"reason": "the line is spent"},
            headers=CMO,
        )
    )
    assert declined["budget"] == "600.00" and declined["change_requests"] == []

    # a CMO changes an approved campaign's budget at once
    assert ok(planning.patch(path, json={"budget": "650.00"}, headers=CMO))["budget"] == "650.00"

    # audit: every step of the campaign, who did it and what changed
    trail = ok(planning.get("/api/v1/audit", params={"entity_id": cid}, headers=VIEWER))
    actions = [(entry["action"], entry["actor"], entry["role"]) for entry in reversed(trail)]
    assert actions == [
        ("created", "ann", "manager"),
        ("submitted", "ann", "manager"),
        ("rejected", "carla", "cmo"),
        ("draft", "ann", "manager"),
        ("submitted", "ann", "manager"),
        ("approved", "carla", "cmo"),
        ("updated", "ann", "manager"),  # the name
        ("change_requested", "ann", "manager"),
        ("change_requested", "ann", "manager"),
        ("updated", "carla", "cmo"),  # the accepted end date
        ("change_requested", "ann", "manager"),
        ("updated", "carla", "cmo"),  # the CMO's own budget change
    ]
    rejection = next(entry for entry in trail if entry["action"] == "rejected")
    assert rejection["reason"] == "CPL too high"
    assert (rejection["before"]["status"], rejection["after"]["status"]) == (
        "submitted",
        "rejected",
    )
    last = trail[0]
    assert (last["before"]["budget"], last["after"]["budget"]) == ("600.00", "650.00")
    whole_plan = ok(planning.get("/api/v1/audit", params={"plan_id": plan_id}, headers=VIEWER))
    kinds = {(entry["entity_type"], entry["action"]) for entry in whole_plan}
    assert {("plan", "created"), ("plan", "approved"), ("budget_line", "created")} <= kinds
    assert ("change_request", "superseded") in kinds and ("change_request", "rejected") in kinds

    # other services only ever saw approved values: no campaign state with 900.00
    def about_it(record) -> bool:  # type: ignore[no-untyped-def]
        event = json.loads(record.value)
        return event["data"].get("campaign_id") == cid

    events = [
        json.loads(r.value)
        for r in topic_reader(kafka_bootstrap, PLANNING, match=about_it, expect=17)
    ]
    states = [
        e["data"] for e in events if e["event_type"] in ("campaign.planned", "campaign.updated")
    ]
    assert {s["budget"] for s in states} == {"600.00", "650.00"}
    types = [e["event_type"] for e in events]
    assert types.count("campaign.change_requested") == 3
    decided = [
        e["data"]["decision"] for e in events if e["event_type"] == "campaign.change_decided"
    ]
    assert sorted(decided) == ["accepted", "rejected", "superseded"]
    rejected_event = next(
        e["data"]
        for e in events
        if e["event_type"] == "campaign.status_changed" and e["data"]["status"] == "rejected"
    )
    assert rejected_event["reason"] == "CPL too high" and rejected_event["changed_by"] == "carla"
