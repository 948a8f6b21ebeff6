"""A campaign's target segment over HTTP on a real broker and SQL store: stored, changed at once
(even on an approved campaign: it moves no money), audited, carried on the campaign events, and
refused with the field named when it is not an identifier or names an RFM segment that does
not exist."""

from __future__ import annotations

import json

import httpx
import pytest
from planning_kit import auth

from shared.events.envelope import Envelope
from shared.events.planning import CampaignPlanned
from shared.topics import PLANNING

pytestmark = pytest.mark.integration

MANAGER, CMO, VIEWER = auth("t-manager"), auth("t-cmo"), auth("t-viewer")


def ok(response: httpx.Response, status: int = 200) -> dict:  # type: ignore[type-arg]
    assert response.status_code == status, response.text
    return response.json()  # type: ignore[no-any-return]


def field_of(response: httpx.Response) -> str | None:
    assert response.status_code == 422, response.text
    return response.json()["detail"][0].get("field")  # type: ignore[no-any-return]


def _plan(planning: httpx.Client) -> str:
    body = {"name": "FY27", "period_start": "2027-01-01", "period_end": "2027-12-31"}
    return ok(planning.post("/api/v1/plans", json=body, headers=MANAGER), 201)["plan_id"]  # type: ignore[no-any-return]


def _campaign(**extra: object) -> dict[str, object]:
    return {
        "name": "Win back",
        "channel": "email",
        "owner": "ann",
        "budget": "500.00",
        "start_date": "2027-03-01",
        "end_date": "2027-03-31",
        **extra,
    }


def test_target_segment_is_stored_changed_audited_and_published(
    planning: httpx.Client, kafka_bootstrap: str, topic_reader
) -> None:  # type: ignore[no-untyped-def]
    plan_id = _plan(planning)
    created = ok(
        planning.post(
            f"/api/v1/plans/{plan_id}/campaigns",
            json=_campaign(target_segment=" rfm:at_risk "),
            headers=MANAGER,
        ),
        201,
    )
    cid = created["campaign_id"]
    assert created["target_segment"] == "rfm:at_risk"
    path = f"/api/v1/campaigns/{cid}"
    assert ok(planning.get(path, headers=VIEWER))["target_segment"] == "rfm:at_risk"
    listed = ok(planning.get(f"/api/v1/plans/{plan_id}/campaigns", headers=VIEWER))
    assert [c["target_segment"] for c in listed] == ["rfm:at_risk"]  # type: ignore[index]

    # approved: a manager's change of the target applies at once, no change request
    ok(planning.post(f"/api/v1/plans/{plan_id}/approve", headers=CMO))
    changed = planning.patch(path, json={"target_segment": "lapsed-vip"}, headers=MANAGER)
    assert changed.status_code == 200, changed.text
    assert changed.json()["target_segment"] == "lapsed-vip"
    assert changed.json()["change_requests"] == []
    assert changed.json()["version"] == 3  # created 1, approved 2, retargeted 3

    # an unrelated change keeps it; null removes it
    kept = ok(planning.patch(path, json={"name": "Win back VIPs"}, headers=MANAGER))
    assert kept["target_segment"] == "lapsed-vip"
    cleared = ok(planning.patch(path, json={"target_segment": None}, headers=MANAGER))
    assert cleared["target_segment"] is None

    trail = ok(planning.get("/api/v1/audit", params={"entity_id": cid}, headers=VIEWER))
    updates = [
        (entry["before"]["target_segment"], entry["after"]["target_segment"])
        for entry in reversed(trail)  # type: ignore[arg-type]
        if entry["action"] == "updated"
    ]
    assert updates == [
        ("rfm:at_risk", "lapsed-vip"),
        ("lapsed-vip", "lapsed-vip"),
        ("lapsed-vip", None),
    ]
    created_entry = next(e for e in trail if e["action"] == "created")  # type: ignore[union-attr]
    assert created_entry["after"]["target_segment"] == "rfm:at_risk"

    def about_it(record) -> bool:  # type: ignore[no-untyped-def]
        event = json.loads(record.value)
        return event["event_type"] in ("campaign.planned", "campaign.updated") and (
            event["data"]["campaign_id"] == cid
        )

    states = [
        json.loads(r.value)
        for r in topic_reader(kafka_bootstrap, PLANNING, match=about_it, expect=4)
    ]
    by_version = {e["data"]["version"]: e for e in states}
    assert by_version[1]["event_type"] == "campaign.planned"
    assert by_version[1]["data"]["target_segment"] == "rfm:at_risk"
    assert [by_version[v]["data"]["target_segment"] for v in (3, 4, 5)] == [
        "lapsed-vip",
        "lapsed-vip",
        None,
    ]


def test_bad_target_segment_names_the_field_and_writes_nothing(planning: httpx.Client) -> None:
    plan_id = _plan(planning)
    campaigns = f"/api/v1/plans/{plan_id}/campaigns"
    for bad in ("", "   ", "x" * 129, 7, "rfm:vip", "rfm:", " rfm:Champions"):
        refused = planning.post(campaigns, json=_campaign(target_segment=bad), headers=MANAGER)
        assert field_of(refused) == "target_segment", bad
    unknown = planning.post(campaigns, json=_campaign(target_segment="rfm:vip"), headers=MANAGER)
    message = unknown.json()["detail"][0]["msg"]
    assert "unknown RFM segment 'rfm:vip'" in message and "rfm:need_attention" in message
    assert ok(planning.get(campaigns, headers=VIEWER)) == []
    cid = ok(planning.post(campaigns, json=_campaign(), headers=MANAGER), 201)["campaign_id"]
    for bad in ("", "rfm:lost"):
        refused = planning.patch(
            f"/api/v1/campaigns/{cid}", json={"target_segment": bad}, headers=MANAGER
        )
        assert field_of(refused) == "target_segment", bad
    assert ok(planning.get(f"/api/v1/campaigns/{cid}", headers=VIEWER))["target_segment"] is None


def test_a_campaign_event_without_target_segment_still_parses() -> None:
    # written before the field existed
    data = {
        "campaign_id": "c1",
        "plan_id": "p1",
        "name": "Old",
        "channel": "search",
        "owner": "ann",
        "budget": "10.00",
        "currency": "EUR",
        "start_date": "2026-01-01",
        "end_date": "2026-01-31",
    }
    raw = {
        "event_id": "3f1c2b9e-3c1e-4a57-9a51-2d1c5f0e8b11",
        "event_type": "campaign.planned",
        "occurred_at": "2026-01-01T00:00:00Z",
        "source": "planning",
        "schema_version": 1,
        "data": data,
    }
    envelope = Envelope.model_validate(raw)
    event = CampaignPlanned.model_validate(envelope.data)
    assert event.target_segment is None
