"""Measurement's proposals as planning keeps them, on a real broker and SQL store: a newer
proposal for the same donor supersedes the older one, a rule in ``apply`` mode moves the money
at once (back to a budget line here) and names itself in ``budget.reallocated``, the history
and the audit, and an applied move the budget cannot take is kept as failed, writing nothing."""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal

import httpx
import pytest
from planning_kit import auth

from shared.events.kpi import BudgetReallocationProposed
from shared.publisher import EventPublisher
from shared.topics import PLANNING

pytestmark = pytest.mark.integration
CMO, VIEWER = auth("t-cmo"), auth("t-viewer")


def created(response: httpx.Response) -> dict:  # type: ignore[type-arg]
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_rule_proposals_supersede_apply_and_fail_cleanly(
    planning: httpx.Client, kafka_bootstrap: str, topic_reader
) -> None:  # type: ignore[no-untyped-def]
    plan_id = created(
        planning.post(
            "/api/v1/plans",
            json={
                "name": "Rules at work",
                "period_start": "2027-01-01",
                "period_end": "2027-06-30",
                "budget": "5000.00",
            },
            headers=CMO,
        )
    )["plan_id"]
    lines = f"/api/v1/plans/{plan_id}/budget-lines"
    line_a = created(planning.post(lines, json={"name": "A", "amount": "3000.00"}, headers=CMO))
    line_b = created(planning.post(lines, json={"name": "B", "amount": "1000.00"}, headers=CMO))
    donor, other = (
        created(
            planning.post(
                f"/api/v1/plans/{plan_id}/campaigns",
                json={
                    "name": name,
                    "channel": "search",
                    "owner": "ann",
                    "budget": "1000.00",
                    "start_date": "2027-01-01",
                    "end_date": "2027-06-30",
                    "line_id": line_a["line_id"],
                },
                headers=CMO,
            )
        )["campaign_id"]
        for name in ("Donor", "Other")
    )
    path = f"/api/v1/plans/{plan_id}/reallocation-proposals"

    def propose(**fields: object) -> str:
        proposal = BudgetReallocationProposed(
            plan_id=plan_id, from_campaign_id=donor, reason="CPL 100 (> 60)", **fields
        )
        with EventPublisher(kafka_bootstrap, source="measurement") as events:
            envelope = events.publish(proposal)
        proposal_id = str(envelope.event_id)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            listed = planning.get(path, headers=VIEWER).json()
            if any(p["proposal_id"] == proposal_id for p in listed):
                return proposal_id
            time.sleep(0.2)
        raise AssertionError(f"proposal {proposal_id} never recorded")

    def statuses() -> dict[str, tuple[str, str | None]]:
        listed = planning.get(path, headers=VIEWER).json()
        return {p["proposal_id"]: (p["status"], p["note"]) for p in listed}

    first = propose(to_campaign_id=other, amount=Decimal("100.00"))
    second = propose(to_campaign_id=other, amount=Decimal("200.00"), rule_id="r-propose")
    assert statuses() == {first: ("superseded", None), second: ("open", None)}

    # a rule in apply mode: 300 of the donor's money goes back to line B at once
    applied = propose(
        to_line_id=line_b["line_id"], amount=Decimal("300.00"), rule_id="r-1", mode="apply"
    )
    assert statuses()[applied] == ("applied", None)
    assert statuses()[second] == ("superseded", None)
    campaigns = planning.get(f"/api/v1/plans/{plan_id}/campaigns", headers=VIEWER).json()
    assert {c["campaign_id"]: c["budget"] for c in campaigns} == {
        donor: "700.00",
        other: "1000.00",
    }
    amounts = {
        line["line_id"]: line["amount"] for line in planning.get(lines, headers=VIEWER).json()
    }
    assert amounts == {line_a["line_id"]: "2700.00", line_b["line_id"]: "1300.00"}
    [history] = planning.get(f"/api/v1/plans/{plan_id}/reallocations", headers=VIEWER).json()
    assert {k: history[k] for k in ("kind", "from_id", "to_id", "amount", "source")} == {
        "kind": "campaign_to_line",
        "from_id": donor,
        "to_id": line_b["line_id"],
        "amount": "300.00",
        "source": "rule",
    }
    assert (history["rule_id"], history["requested_by"], history["proposal_id"]) == (
        "r-1",
        "rule:r-1",
        applied,
    )
    [moved] = topic_reader(
        kafka_bootstrap,
        PLANNING,
        expect=1,
        match=lambda r: (
            json.loads(r.value)["event_type"] == "budget.reallocated"
            and json.loads(r.value)["data"]["plan_id"] == plan_id
        ),
    )
    data = json.loads(moved.value)["data"]
    assert (data["rule_id"], data["to_line_id"], data["to_campaign_id"], data["from_budget"]) == (
        "r-1",
        line_b["line_id"],
        None,
        "700.00",
    )
    audit = planning.get("/api/v1/audit", params={"plan_id": plan_id}, headers=VIEWER).json()
    assert any(
        entry["action"] == "rule_applied" and entry["actor"] == "rule:r-1" for entry in audit
    ), audit

    # more than the donor has: kept as failed with planning's reason, nothing moves
    failed = propose(to_campaign_id=other, amount=Decimal("900.00"), rule_id="r-2", mode="apply")
    status, note = statuses()[failed]
    assert status == "failed" and note and "700" in note, note
    campaigns = planning.get(f"/api/v1/plans/{plan_id}/campaigns", headers=VIEWER).json()
    assert {c["campaign_id"]: c["budget"] for c in campaigns} == {
        donor: "700.00",
        other: "1000.00",
    }
    assert len(planning.get(f"/api/v1/plans/{plan_id}/reallocations", headers=VIEWER).json()) == 1
    [refused] = topic_reader(
        kafka_bootstrap,
        PLANNING,
        expect=1,
        match=lambda r: (
            json.loads(r.value)["event_type"] == "reallocation.apply_failed"
            and json.loads(r.value)["data"]["plan_id"] == plan_id
        ),
    )
    data = json.loads(refused.value)["data"]
    assert (data["proposal_id"], data["rule_id"], data["amount"], data["note"]) == (
        failed,
        "r-2",
        "900.00",
        note,
    )


def test_a_line_proposal_is_accepted_by_a_cmo(planning: httpx.Client, kafka_bootstrap: str) -> None:  # type: ignore[no-untyped-def]
    plan_id = created(
        planning.post(
            "/api/v1/plans",
            json={
                "name": "Back to the line",
                "period_start": "2027-01-01",
                "period_end": "2027-06-30",
            },
            headers=CMO,
        )
    )["plan_id"]
    line = created(
        planning.post(
            f"/api/v1/plans/{plan_id}/budget-lines",
            json={"name": "Reserve", "amount": "100.00"},
            headers=CMO,
        )
    )
    donor = created(
        planning.post(
            f"/api/v1/plans/{plan_id}/campaigns",
            json={
                "name": "Plan-level",
                "channel": "social",
                "owner": "ann",
                "budget": "500.00",
                "start_date": "2027-01-01",
                "end_date": "2027-06-30",
            },
            headers=CMO,
        )
    )["campaign_id"]
    proposal = BudgetReallocationProposed(
        plan_id=plan_id,
        from_campaign_id=donor,
        to_line_id=line["line_id"],
        amount=Decimal("150.00"),
        reason="ROMI below 0",
        rule_id=f"r-{uuid.uuid4()}",
    )
    with EventPublisher(kafka_bootstrap, source="measurement") as events:
        proposal_id = str(events.publish(proposal).event_id)
    path = f"/api/v1/plans/{plan_id}/reallocation-proposals"
    deadline = time.monotonic() + 30
    while not planning.get(path, headers=VIEWER).json() and time.monotonic() < deadline:
        time.sleep(0.2)
    [listed] = planning.get(path, headers=VIEWER).json()
    assert (listed["to_campaign_id"], listed["to_line_id"], listed["mode"]) == (
        None,
        line["line_id"],
        "propose",
    )
    accepted = planning.post(
        "/api/v1/budget-reallocations", json={"proposal_id": proposal_id}, headers=CMO
    )
    assert accepted.status_code == 201, accepted.text
    [campaign] = planning.get(f"/api/v1/plans/{plan_id}/campaigns", headers=VIEWER).json()
    assert campaign["budget"] == "350.00"
    [grown] = planning.get(f"/api/v1/plans/{plan_id}/budget-lines", headers=VIEWER).json()
    assert grown["amount"] == "250.00"  # a plan-level campaign's money goes into the line
    [history] = planning.get(f"/api/v1/plans/{plan_id}/reallocations", headers=VIEWER).json()
    assert (history["kind"], history["source"], history["requested_by"]) == (
        "campaign_to_line",
        "proposal",
        "carla",
    )
