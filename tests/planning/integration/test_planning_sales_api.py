"""The sales-target cascade over HTTP on a real broker and SQL store: the unit tree, a target
set at the top and split down, a rep's bottom-up proposal decided by the region's owner, the
roll-up with its gaps, who may do what, and the events."""

from __future__ import annotations

import json

import httpx
import pytest
from planning_kit import auth

from shared.topics import PLANNING

pytestmark = pytest.mark.integration

CMO, NINA, RITA, ROB, VIEWER = (auth(t) for t in ("t-cmo", "t-nina", "t-rita", "t-rob", "t-viewer"))


def ok(response: httpx.Response, status: int = 200) -> dict:  # type: ignore[type-arg]
    assert response.status_code == status, response.text
    return response.json()  # type: ignore[no-any-return]


def test_targets_cascade_down_and_reps_propose_up(
    planning: httpx.Client, kafka_bootstrap: str, topic_reader, unique_id: str
) -> None:  # type: ignore[no-untyped-def]
    def unit(
        name: str, kind: str, owner: str, parent: str | None = None, code: str | None = None
    ) -> str:
        body = {
            "name": f"{name} {unique_id}",
            "kind": kind,
            "owner": owner,
            "parent_id": parent,
            "code": code,
        }
        return ok(planning.post("/api/v1/sales-units", json=body, headers=CMO), 201)["unit_id"]

    assert (
        planning.post(
            "/api/v1/sales-units", json={"name": "X", "kind": "company", "owner": "x"}, headers=NINA
        ).status_code
        == 403
    )
    company = unit("Acme", "company", "carla")
    north = unit("North", "region", "nina", company)
    south = unit("South", "region", "sam", company)
    rita = unit("Rita", "rep", "rita", north, code=f"rep-r-{unique_id}")
    rob = unit("Rob", "rep", "rob", north, code=f"rep-b-{unique_id}")
    bad = planning.post(
        "/api/v1/sales-units",
        json={"name": "Deep", "kind": "region", "owner": "x", "parent_id": rita},
        headers=CMO,
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "kind"

    period = "2031-Q2"  # a period no other test uses
    top = ok(
        planning.post(
            "/api/v1/sales-targets",
            json={"unit_id": company, "period": period, "amount": "300000.00"},
            headers=CMO,
        ),
        201,
    )
    assert top["currency"] == "EUR"
    assert (
        planning.post(
            "/api/v1/sales-targets",
            json={"unit_id": company, "period": period, "amount": "1.00"},
            headers=NINA,
        ).status_code
        == 403
    )  # only cmo/admin set the top
    split = ok(
        planning.post(
            f"/api/v1/sales-targets/{top['target_id']}/split",
            json={"method": "shares", "shares": {north: "0.6", south: "0.4"}},
            headers=CMO,
        )
    )
    assert {t["unit_id"]: t["amount"] for t in split} == {north: "180000.00", south: "120000.00"}
    north_target = next(t for t in split if t["unit_id"] == north)
    # the region's owner splits its own target evenly over its reps
    reps = ok(
        planning.post(
            f"/api/v1/sales-targets/{north_target['target_id']}/split",
            json={"method": "even"},
            headers=NINA,
        )
    )
    assert {t["unit_id"]: t["amount"] for t in reps} == {rita: "90000.00", rob: "90000.00"}
    rita_target = next(t for t in reps if t["unit_id"] == rita)

    proposals = f"/api/v1/sales-targets/{rita_target['target_id']}/proposals"
    assert planning.post(proposals, json={"amount": "1.00"}, headers=ROB).status_code == 403
    proposal = ok(
        planning.post(
            proposals, json={"amount": "80000.00", "comment": "key account lost"}, headers=RITA
        ),
        201,
    )
    decide = f"/api/v1/sales-target-proposals/{proposal['proposal_id']}"
    assert planning.post(f"{decide}/accept", headers=RITA).status_code == 403  # not her own call
    assert ok(planning.post(f"{decide}/accept", headers=NINA))["status"] == "accepted"
    assert planning.post(f"{decide}/accept", headers=NINA).status_code == 409
    second = ok(planning.post(proposals, json={"amount": "1000.00"}, headers=RITA), 201)
    refused = planning.post(
        f"/api/v1/sales-target-proposals/{second['proposal_id']}/reject", json={}, headers=NINA
    )
    assert refused.status_code == 422
    rejected = ok(
        planning.post(
            f"/api/v1/sales-target-proposals/{second['proposal_id']}/reject",
            json={"reason": "too low"},
            headers=NINA,
        )
    )
    assert (rejected["status"], rejected["reason"]) == ("rejected", "too low")

    tree = ok(planning.get("/api/v1/sales-targets", params={"period": period}, headers=VIEWER))
    [root] = [node for node in tree["roots"] if node["unit"]["unit_id"] == company]
    assert (root["target"]["amount"], root["children_sum"], root["gap"]) == (
        "300000.00",
        "300000.00",
        "0.00",
    )
    north_node = next(node for node in root["children"] if node["unit"]["unit_id"] == north)
    assert (north_node["children_sum"], north_node["gap"]) == ("170000.00", "10000.00")
    assert (
        planning.get(
            "/api/v1/sales-targets", params={"period": "2031-Q5"}, headers=VIEWER
        ).status_code
        == 422
    )
    listed = ok(planning.get(proposals, headers=VIEWER))
    assert [p["status"] for p in listed] == ["rejected", "accepted"]

    def ours(record) -> bool:  # type: ignore[no-untyped-def]
        event = json.loads(record.value)
        return (
            event["event_type"].startswith("sales_") and unique_id in record.value.decode()
        ) or (event["data"].get("unit_id") in {company, north, south, rita, rob})

    events = [
        json.loads(r.value) for r in topic_reader(kafka_bootstrap, PLANNING, match=ours, expect=15)
    ]
    kinds = [e["event_type"] for e in events]
    assert kinds.count("sales_unit.set") == 5
    assert kinds.count("sales_target.set") == 1 + 2 + 2 + 1  # top, regions, reps, accepted
    assert kinds.count("sales_target.proposed") == 2
    assert kinds.count("sales_target.proposal_decided") == 2
    accepted = [
        e["data"]
        for e in events
        if e["event_type"] == "sales_target.set" and e["data"]["unit_id"] == rita
    ]
    assert [(t["amount"], t["version"]) for t in accepted] == [("90000.00", 1), ("80000.00", 2)]
    assert accepted[0]["period_start"] == "2031-04-01" and accepted[0]["period_end"] == "2031-06-30"
