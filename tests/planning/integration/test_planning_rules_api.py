"""Reallocation rules over HTTP on a real broker and SQL store: every plan's default rule,
create / change / remove by cmo or admin, 422s naming the field, the audit trail and
``reallocation_rule.set`` / ``reallocation_rule.removed``."""

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


def test_rules_are_defaulted_checked_changed_removed_audited_and_published(
    planning: httpx.Client, kafka_bootstrap: str, topic_reader, unique_id: str
) -> None:  # type: ignore[no-untyped-def]
    plan_id = ok(
        planning.post(
            "/api/v1/plans",
            json={
                "name": f"Rules {unique_id}",
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
            json={"name": "Search", "amount": "1000.00"},
            headers=MANAGER,
        ),
        201,
    )["line_id"]
    rules_url = f"/api/v1/plans/{plan_id}/reallocation-rules"
    [default] = planning.get(rules_url, headers=VIEWER).json()
    assert {k: v for k, v in default.items() if k != "rule_id"} == {
        "plan_id": plan_id,
        "kpi": "ckpi",
        "comparison": "lt",
        "threshold": "80.0000000000",
        "min_spend_share": "0.100000",
        "hold_s": 0,
        "hysteresis": "5.0000000000",
        "action": "best_in_line",
        "target_id": None,
        "recipient_threshold": "110.0000000000",
        "share": "0.200000",
        "min_amount": "1.00",
        "mode": "propose",
        "scope_line_id": None,
        "enabled": True,
        "is_default": True,
        "version": 1,
    }

    body = {
        "kpi": "cpl",
        "comparison": "gt",
        "threshold": "40",
        "min_spend_share": "0.3",
        "hold_s": 3600,
        "action": "line",
        "target_id": line_id,
        "share": "0.25",
        "mode": "apply",
    }
    for changes, field in (
        ({"kpi": "mood"}, "kpi"),
        ({"comparison": "eq"}, "comparison"),
        ({"threshold": "x"}, "threshold"),
        ({"min_spend_share": "1.5"}, "min_spend_share"),
        ({"hold_s": -1}, "hold_s"),
        ({"action": "elsewhere"}, "action"),
        ({"target_id": None}, "target_id"),
        ({"target_id": "not-a-line"}, "target_id"),
        ({"share": "0"}, "share"),
        ({"mode": "maybe"}, "mode"),
        ({"scope_line_id": "not-a-line"}, "scope_line_id"),
        ({"hysteresis": "-1"}, "hysteresis"),
        ({"recipient_threshold": "10"}, "recipient_threshold"),
        ({"min_amount": "-5"}, "min_amount"),
        ({"when": "now"}, "when"),
    ):
        refused = planning.post(rules_url, json={**body, **changes}, headers=CMO)
        assert refused.status_code == 422, (changes, refused.text)
        assert refused.json()["detail"][0]["field"] == field, refused.text
    assert planning.post(rules_url, json=body, headers=MANAGER).status_code == 403
    assert (
        planning.post("/api/v1/plans/nope/reallocation-rules", json=body, headers=CMO).status_code
        == 404
    )

    rule = ok(planning.post(rules_url, json=body, headers=CMO), 201)
    assert (rule["action"], rule["target_id"], rule["mode"], rule["version"]) == (
        "line",
        line_id,
        "apply",
        1,
    )
    rule_url = f"/api/v1/reallocation-rules/{rule['rule_id']}"
    assert planning.patch(rule_url, json={"enabled": False}, headers=MANAGER).status_code == 403
    changed = ok(planning.patch(rule_url, json={"action": "best_in_line"}, headers=CMO))
    assert (changed["target_id"], changed["version"]) == (None, 2)
    same = ok(planning.patch(rule_url, json={"threshold": "40.0"}, headers=CMO))
    assert same["version"] == 2  # unchanged: no new version, no event
    assert planning.patch(rule_url, json={"share": "2"}, headers=CMO).status_code == 422
    assert ok(planning.get(rule_url, headers=VIEWER)) == changed

    default_url = f"/api/v1/reallocation-rules/{default['rule_id']}"
    assert ok(planning.patch(default_url, json={"mode": "apply"}, headers=CMO))["version"] == 2
    assert planning.delete(rule_url, headers=MANAGER).status_code == 403
    assert planning.delete(rule_url, headers=CMO).status_code == 204
    assert planning.get(rule_url, headers=VIEWER).status_code == 404
    assert [r["rule_id"] for r in planning.get(rules_url, headers=VIEWER).json()] == [
        default["rule_id"]
    ]

    audit = ok(planning.get("/api/v1/audit", params={"entity_id": rule["rule_id"]}, headers=VIEWER))
    assert [(e["action"], e["actor"]) for e in audit] == [
        ("removed", "carla"),
        ("updated", "carla"),
        ("created", "carla"),
    ]

    def ours(record) -> bool:  # type: ignore[no-untyped-def]
        event = json.loads(record.value)
        return event["event_type"].startswith("reallocation_rule.") and (
            event["data"]["plan_id"] == plan_id
        )

    events = [
        json.loads(r.value) for r in topic_reader(kafka_bootstrap, PLANNING, match=ours, expect=5)
    ]
    assert [(e["event_type"], e["data"]["rule_id"], e["data"].get("version")) for e in events] == [
        ("reallocation_rule.set", default["rule_id"], 1),
        ("reallocation_rule.set", rule["rule_id"], 1),
        ("reallocation_rule.set", rule["rule_id"], 2),
        ("reallocation_rule.set", default["rule_id"], 2),
        ("reallocation_rule.removed", rule["rule_id"], None),
    ]
