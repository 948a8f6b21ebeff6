"""The HTTP APIs under bad input, oversized bodies and every role (SPEC §5): each bad request gets
a 4xx whose JSON body names the field, and leaves every table of the store as it was (no row, no
outbox event); viewers only read, executors change only their own stages, only cmo/admin
approve plans and move budgets. Webhooks go to public addresses only and are signed so that a
receiver can refuse a replay."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from http_kit import (
    Service,
    auth,
    build_app,
    error_fields,
    make_plan_and_campaign,
    own_broker,
    running,
    serving,
    subject,
    unchanged,
)
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.notifier import store as notifier_store
from services.notifier.senders import DeliveryError, HttpWebhookSender, refused_address
from shared.embedded import free_port
from shared.events.planning import CampaignPlanned, PlanCreated, StageScheduled
from shared.publisher import EventPublisher
from shared.sql import make_engine

pytestmark = pytest.mark.integration
__all__ = ["own_broker"]  # a fixture

MiB = 1024 * 1024


def expect_refused(service: Any, method: str, url: str, *, field: str, status: int = 422, **kw):  # type: ignore[no-untyped-def]
    """Send a request that must get ``status`` naming ``field`` and write nothing."""
    still_unchanged = unchanged(service)
    response = service.client.request(method, url, **kw)
    assert response.status_code == status, (method, url, kw, response.text)
    assert field in error_fields(response), (field, response.json())
    still_unchanged()
    return response


# -- planning ---------------------------------------------------------------------------------


def test_planning_bad_input_roles_tokens_and_body_limit(
    own_broker: str, database_url: str, tmp_path, serve_app, unique_id: str
) -> None:  # type: ignore[no-untyped-def]
    """One served planning instance per store (a service start costs a consumer-group join)."""
    with serving(
        "planning",
        serve_app=serve_app,
        bootstrap=own_broker,
        database_url=database_url,
        data_dir=tmp_path,
    ) as planning:
        check_planning_bad_input(planning, unique_id=unique_id)
        check_planning_roles(planning, unique_id=unique_id)
        check_tokens(planning)
        check_streamed_body_limit(planning)


def check_planning_bad_input(planning: Service, *, unique_id: str) -> None:
    """Out-of-range values, NUL characters and explicit nulls: 422 naming the field, nothing
    written, and the campaign still reads."""
    plan_id, campaign_id = make_plan_and_campaign(planning.client, name=f"P {unique_id}")
    admin = auth("admin")
    targets = f"/api/v1/campaigns/{campaign_id}/kpi-targets"
    for body, field in [
        ({"kpi": "leads", "target": "1e400"}, "target"),
        ({"kpi": "leads", "target": "1E+400"}, "target"),
        ({"kpi": "leads", "target": 1e-11}, "target"),
        ({"kpi": "leads", "target": "NaN"}, "target"),
        ({"kpi": "leads", "target": "10", "weight": "1e400"}, "weight"),
        ({"kpi": "leads", "target": "10", "weight": 0}, "weight"),
        ({"kpi": "leads", "target": "10", "tolerance": 1}, "tolerance"),
        ({"kpi": "lead\x00s", "target": "10"}, "kpi"),
    ]:
        expect_refused(planning, "POST", targets, field=field, json=body, headers=admin)
    # the campaign still reads, with no target
    campaign = planning.client.get(f"/api/v1/campaigns/{campaign_id}", headers=admin)
    assert campaign.status_code == 200 and campaign.json()["kpi_targets"] == []

    patch = f"/api/v1/campaigns/{campaign_id}"
    for field in (
        "name",
        "budget",
        "start_date",
        "end_date",
        "owner",
        "channel",
        "gross_margin",
        "status",
    ):
        expect_refused(planning, "PATCH", patch, field=field, json={field: None}, headers=admin)
    # absent means unchanged; brand is the one optional attribute, so null clears it
    version = campaign.json()["version"]
    same = planning.client.patch(patch, json={}, headers=admin)
    assert same.status_code == 200 and same.json()["version"] == version
    cleared = planning.client.patch(patch, json={"brand": None}, headers=admin)
    assert cleared.status_code == 200 and cleared.json()["brand"] is None

    plan = {"name": "FY", "period_start": "2027-01-01", "period_end": "2027-12-31"}
    for body, field in [
        ({**plan, "currency": "QQQ"}, "currency"),
        ({**plan, "period_start": 0}, "period_start"),
        ({**plan, "period_start": "0"}, "period_start"),
        ({**plan, "period_start": "0001-01-01"}, "period_start"),
        ({**plan, "period_end": "9999-12-31"}, "period_end"),
        ({**plan, "name": "FY\x00"}, "name"),
        ({**plan, "owner": "a" * 129}, "owner"),
    ]:
        expect_refused(planning, "POST", "/api/v1/plans", field=field, json=body, headers=admin)

    stages = f"/api/v1/campaigns/{campaign_id}/stages"
    for body, field in [
        ({"name": "Go", "deadline": "0.5"}, "deadline"),
        ({"name": "Go", "deadline": "2027-03-10T17:00:00"}, "deadline"),  # no offset
        ({"name": "Go", "deadline": "9999-12-31T00:00:00Z"}, "deadline"),
        ({"name": "G\x00o", "deadline": "2027-03-10T17:00:00Z"}, "name"),
    ]:
        expect_refused(planning, "POST", stages, field=field, json=body, headers=admin)
    campaigns = f"/api/v1/plans/{plan_id}/campaigns"
    for body, field in [
        ({"gross_margin": "1.5"}, "gross_margin"),
        ({"budget": "1e400"}, "budget"),
        ({"brand": "B\x00"}, "brand"),
    ]:
        valid = {
            "name": "C",
            "channel": "search",
            "owner": "o",
            "budget": "1",
            "start_date": "2027-03-01",
            "end_date": "2027-03-31",
        }
        expect_refused(
            planning, "POST", campaigns, field=field, json={**valid, **body}, headers=admin
        )
    expect_refused(
        planning,
        "POST",
        "/api/v1/budget-reallocations",
        field="reason",
        json={
            "from_campaign_id": campaign_id,
            "to_campaign_id": "x",
            "amount": "1",
            "reason": "r\x00",
        },
        headers=admin,
    )
    expect_refused(planning, "GET", "/api/v1/plans/a%00b", field="plan_id", headers=admin)


# -- execution --------------------------------------------------------------------------------


def publish_stage(bootstrap: str, *, unique_id: str) -> tuple[str, str]:
    """A plan, an approved campaign and a stage assigned to the executor, as planning
    publishes them; returns (campaign_id, stage_id)."""
    plan_id, campaign_id, stage_id = (f"{kind}-{unique_id}" for kind in ("p", "c", "s"))
    with EventPublisher(bootstrap, source="planning") as publisher:
        publisher.publish(
            PlanCreated(
                plan_id=plan_id,
                name="Plan",
                period_start=dt.date(2027, 1, 1),
                period_end=dt.date(2027, 12, 31),
                currency="EUR",
                owner=subject("manager"),
            )
        )
        publisher.publish(
            CampaignPlanned(
                campaign_id=campaign_id,
                plan_id=plan_id,
                name="Campaign",
                channel="search",
                owner=subject("manager"),
                budget="1000",
                currency="EUR",
                start_date=dt.date(2027, 3, 1),
                end_date=dt.date(2027, 5, 31),
                status="approved",
            )
        )
        publisher.publish(
            StageScheduled(
                stage_id=stage_id,
                campaign_id=campaign_id,
                name="Creatives",
                deadline=dt.datetime(2027, 3, 10, 17, tzinfo=dt.UTC),
                assignee=subject("executor"),
            )
        )
    return campaign_id, stage_id


def wait_until_known(client: Any, url: str, *, timeout_s: float = 60.0) -> None:
    """Poll ``url`` (as admin) until it answers 200."""
    deadline = time.monotonic() + timeout_s
    while client.get(url, headers=auth("admin")).status_code != 200:
        assert time.monotonic() < deadline, f"{url} never became known"
        time.sleep(0.2)


def test_execution_bounds_paging_and_checks_stage_owners(
    own_broker: str, database_url: str, tmp_path, unique_id: str
) -> None:  # type: ignore[no-untyped-def]
    with running(
        "execution",
        bootstrap=own_broker,
        database_url=database_url,
        data_dir=tmp_path,
        scheduler_interval_s=3600,
    ) as execution:
        admin = auth("admin")
        for query, field in [
            ("offset=" + "9" * 25, "offset"),
            ("offset=-1", "offset"),
            ("limit=" + "9" * 25, "limit"),
            ("limit=0", "limit"),
            ("status=bogus", "status"),
            ("plan_id=a%00b", "plan_id"),
        ]:
            expect_refused(
                execution, "GET", f"/api/v1/campaigns?{query}", field=field, headers=admin
            )
        expect_refused(execution, "GET", "/api/v1/stages/a%00b", field="stage_id", headers=admin)

        _campaign_id, stage_id = publish_stage(own_broker, unique_id=unique_id)
        wait_until_known(execution.client, f"/api/v1/stages/{stage_id}")
        status_url = f"/api/v1/stages/{stage_id}/status"
        expect_refused(
            execution,
            "POST",
            status_url,
            field="comment",
            json={"status": "in_progress", "comment": "a\x00"},
            headers=admin,
        )
        expect_refused(
            execution, "POST", status_url, field="status", json={"status": "x"}, headers=admin
        )
        # roles: viewers read only; an executor changes only the stages assigned to it
        for role in ("viewer", "other-executor"):
            still = unchanged(execution)
            refused = execution.client.post(
                status_url, json={"status": "in_progress"}, headers=auth(role)
            )
            assert refused.status_code == 403, (role, refused.text)
            still()
        own = execution.client.post(
            status_url, json={"status": "in_progress"}, headers=auth("executor")
        )
        assert own.status_code == 200, own.text
        assert own.json()["status"] == "in_progress"


# -- measurement ------------------------------------------------------------------------------


def test_measurement_bounds_query_timestamps(own_broker: str, chdb_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with running(
        "measurement",
        bootstrap=own_broker,
        database_url="",
        chdb_url=chdb_url,
        data_dir=tmp_path,
    ) as measurement:
        admin = auth("admin")
        far = "from=0001-01-01T00:00:00Z&to=9999-12-31T00:00:00Z"
        for url, fields in [
            (f"/api/v1/kpis/series?scope=company&bucket=week&{far}", {"from", "to"}),
            ("/api/v1/kpis/company?from=2027-01-01T00:00:00Z&to=0.5", {"to"}),
            ("/api/v1/kpis/company?from=0", {"from"}),
            ("/api/v1/kpis/company?from=2027-01-01", {"from"}),  # no time, no offset
            ("/api/v1/kpis/campaigns/a%00b", {"campaign_id"}),
            ("/api/v1/funnel?campaign_id=" + "c" * 129, {"campaign_id"}),
            ("/api/v1/kpis/channels/s%00", {"channel"}),
        ]:
            response = measurement.client.get(url, headers=admin)
            assert response.status_code == 422, (url, response.text)
            assert fields <= error_fields(response), (url, response.json())
        # every measurement route only reads — GETs, and POSTs that compute a model from a
        # body — except the segment definitions measurement owns
        posts = {
            (method, path)
            for path, operations in measurement.app.openapi()["paths"].items()
            for method in operations
            if method != "get"
        }
        assert posts == {
            ("post", "/api/v1/models/campaign"),
            ("post", "/api/v1/models/plan-scenario"),
            ("post", "/api/v1/segments"),
            ("put", "/api/v1/segments/{segment_id}"),
            ("delete", "/api/v1/segments/{segment_id}"),
        }, posts


# -- notifier: bad input, roles, webhook addresses -------------------------------------------


BLOCKED_WEBHOOKS = [
    "http://127.0.0.1:8080/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.1.2.3/hook",
    "http://192.168.0.10/hook",
    "http://172.16.5.4/hook",
    "http://100.64.0.1/hook",
    "http://0.0.0.0/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[fe80::1]/hook",
    "http://localhost:9000/hook",
    "http://hooks.localhost/hook",
]


def test_notifier_refuses_bad_recipients_private_webhooks_and_viewer_writes(
    own_broker: str, database_url: str, tmp_path, unique_id: str
) -> None:  # type: ignore[no-untyped-def]
    with running(
        "notifier",
        bootstrap=own_broker,
        database_url=database_url,
        data_dir=tmp_path,
        consumer_group=f"mrm-notifier-{unique_id}",
    ) as notifier:
        admin = auth("admin")
        url = f"/api/v1/recipients/r-{unique_id}"
        for body, field in [
            ({"name": "A\x00"}, "name"),
            ({"email": "a\x00b@example.com"}, "email"),
            ({"webhook_url": "https://example.com/" + "a" * 2100}, "webhook_url"),
            *(
                ({"webhook_url": hook, "channels": ["webhook"]}, "webhook_url")
                for hook in BLOCKED_WEBHOOKS
            ),
        ]:
            expect_refused(notifier, "PUT", url, field=field, json=body, headers=admin)
        expect_refused(
            notifier,
            "PUT",
            "/api/v1/recipients/a%00b",
            field="recipient_id",
            json={},
            headers=admin,
        )
        expect_refused(
            notifier,
            "GET",
            "/api/v1/notifications?recipient=a%00b",
            field="recipient",
            headers=admin,
        )

        # viewers only read, their own recipient included; executors manage their own
        viewer_url = f"/api/v1/recipients/{subject('viewer')}"
        still = unchanged(notifier)
        refused = notifier.client.put(
            viewer_url,
            json={"email": "v@example.com", "channels": ["email"]},
            headers=auth("viewer"),
        )
        assert refused.status_code == 403, refused.text
        other = notifier.client.put(url, json={}, headers=auth("executor"))
        assert other.status_code == 403
        still()
        own = notifier.client.put(
            f"/api/v1/recipients/{subject('executor')}",
            json={"webhook_url": "https://hooks.example.com/me", "channels": ["webhook"]},
            headers=auth("executor"),
        )
        assert own.status_code == 201, own.text
        assert notifier.client.get(viewer_url, headers=auth("viewer")).status_code == 404


def test_notifier_allows_private_webhooks_when_configured(tmp_path, unique_id: str) -> None:  # type: ignore[no-untyped-def]
    app = build_app(
        "notifier",
        bootstrap="127.0.0.1:1",
        database_url="",
        chdb_url=None,
        data_dir=tmp_path,
        webhook_allow_private=True,
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'n.db'}")
    notifier_store.create_schema(engine)
    app.state.engine = engine  # the API alone: no broker, no delivery worker
    response = TestClient(app).put(
        f"/api/v1/recipients/r-{unique_id}",
        json={"webhook_url": "http://127.0.0.1:9000/hook", "channels": ["webhook"]},
        headers=auth("admin"),
    )
    engine.dispose()
    assert response.status_code == 201, response.text


# -- roles on every mutating route of planning -----------------------------------------------


def check_planning_roles(planning: Service, *, unique_id: str) -> None:
    """Every mutating route of planning against SPEC §5's roles; a refusal writes nothing."""
    client = planning.client
    plan_id, campaign_id = make_plan_and_campaign(client, name=f"Roles {unique_id}")
    second = client.post(
        f"/api/v1/plans/{plan_id}/campaigns",
        json={
            "name": "Second",
            "channel": "social",
            "owner": "o",
            "budget": "500",
            "start_date": "2027-03-01",
            "end_date": "2027-05-31",
        },
        headers=auth("manager"),
    ).json()["campaign_id"]
    requests: dict[tuple[str, str], tuple[dict[str, Any] | None, set[str]]] = {
        ("POST", "/api/v1/plans"): (
            {"name": "X", "period_start": "2027-01-01", "period_end": "2027-12-31"},
            {"admin", "cmo", "manager"},
        ),
        ("POST", "/api/v1/plans/{plan_id}/campaigns"): (
            {
                "name": "X",
                "channel": "tv",
                "owner": "o",
                "budget": "1",
                "start_date": "2027-03-01",
                "end_date": "2027-03-31",
            },
            {"admin", "cmo", "manager"},
        ),
        ("PATCH", "/api/v1/campaigns/{campaign_id}"): (
            {"name": "Renamed"},
            {"admin", "cmo", "manager"},
        ),
        ("POST", "/api/v1/campaigns/{campaign_id}/stages"): (
            {"name": "S", "deadline": "2027-03-10T17:00:00Z"},
            {"admin", "cmo", "manager"},
        ),
        ("POST", "/api/v1/campaigns/{campaign_id}/kpi-targets"): (
            {"kpi": "leads", "target": "10"},
            {"admin", "cmo", "manager"},
        ),
        ("POST", "/api/v1/budget-reallocations"): (
            {"from_campaign_id": campaign_id, "to_campaign_id": second, "amount": "1"},
            {"admin", "cmo"},
        ),
        ("PATCH", "/api/v1/plans/{plan_id}"): ({"name": "Renamed"}, {"admin", "cmo", "manager"}),
        ("POST", "/api/v1/plans/{plan_id}/budget-lines"): (
            {"name": "L", "amount": "1"},
            {"admin", "cmo", "manager"},
        ),
        ("PATCH", "/api/v1/budget-lines/{line_id}"): ({"name": "R"}, {"admin", "cmo", "manager"}),
        ("PUT", "/api/v1/plans/{plan_id}/discount-limit"): (
            {"promo_fund": "1"},
            {"admin", "cmo", "manager"},
        ),
        ("PUT", "/api/v1/budget-lines/{line_id}/discount-limit"): (
            {"max_discount_rate": "0.1"},
            {"admin", "cmo", "manager"},
        ),
        ("PUT", "/api/v1/campaigns/{campaign_id}/discount-limit"): (
            {"promo_fund": "1", "max_discount_rate": "0.2"},
            {"admin", "cmo", "manager"},
        ),
        ("DELETE", "/api/v1/budget-lines/{line_id}"): (None, {"admin", "cmo", "manager"}),
        ("POST", "/api/v1/campaigns/{campaign_id}/submit"): (None, {"admin", "cmo", "manager"}),
        ("POST", "/api/v1/campaigns/{campaign_id}/approve"): (None, {"admin", "cmo"}),
        ("POST", "/api/v1/campaigns/{campaign_id}/reject"): ({"reason": "r"}, {"admin", "cmo"}),
        ("POST", "/api/v1/change-requests/{request_id}/accept"): (None, {"admin", "cmo"}),
        ("POST", "/api/v1/change-requests/{request_id}/reject"): (
            {"reason": "r"},
            {"admin", "cmo"},
        ),
        ("POST", "/api/v1/sales-units"): (
            {"name": "U", "kind": "company", "owner": "o"},
            {"admin", "cmo"},
        ),
        ("POST", "/api/v1/sales-targets"): (
            {"unit_id": "{region}", "period": "2027-Q1", "amount": "10"},
            {"admin", "cmo"},
        ),
        ("POST", "/api/v1/sales-targets/{target_id}/split"): ({"method": "even"}, {"admin", "cmo"}),
        ("POST", "/api/v1/sales-targets/{target_id}/proposals"): ({"amount": "5"}, {"executor"}),
        ("POST", "/api/v1/sales-target-proposals/{proposal_id}/accept"): (None, {"admin", "cmo"}),
        ("POST", "/api/v1/sales-target-proposals/{proposal_id}/reject"): (
            {"reason": "r"},
            {"admin", "cmo"},
        ),
        ("POST", "/api/v1/plans/{plan_id}/reallocation-rules"): (
            {
                "kpi": "ckpi",
                "comparison": "lt",
                "threshold": "70",
                "action": "best_in_line",
                "share": "0.1",
            },
            {"admin", "cmo"},
        ),
        ("PATCH", "/api/v1/reallocation-rules/{rule_id}"): ({"enabled": False}, {"admin", "cmo"}),
        ("DELETE", "/api/v1/reallocation-rules/{rule_id}"): (None, {"admin", "cmo"}),
        ("POST", "/api/v1/plans/{plan_id}/approve"): ({}, {"admin", "cmo"}),
        # reads the forecast kept at approval: every role may
        ("POST", "/api/v1/campaigns/{campaign_id}/forecast"): (
            None,
            {"admin", "cmo", "manager", "executor", "viewer"},
        ),
    }
    mutating = {
        (method.upper(), path)
        for path, operations in planning.app.openapi()["paths"].items()
        for method in operations
        if method != "get"
    }
    assert mutating == set(requests), "a mutating route without a role check in this test"
    line_id = client.post(
        f"/api/v1/plans/{plan_id}/budget-lines",
        json={"name": "Spare", "amount": "100"},
        headers=auth("manager"),
    ).json()["line_id"]
    [default_rule] = client.get(
        f"/api/v1/plans/{plan_id}/reallocation-rules", headers=auth("viewer")
    ).json()
    ids = {
        "plan_id": plan_id,
        "campaign_id": campaign_id,
        "line_id": line_id,
        "rule_id": default_rule["rule_id"],
    }
    # the approval routes each need a campaign in the status they act on
    drafts = {
        name: client.post(
            f"/api/v1/plans/{plan_id}/campaigns",
            json={
                "name": name,
                "channel": "tv",
                "owner": "o",
                "budget": "10",
                "start_date": "2027-03-01",
                "end_date": "2027-03-31",
            },
            headers=auth("manager"),
        ).json()["campaign_id"]
        for name in ("submit", "approve", "reject", "accept", "decline")
    }
    for name in ("approve", "reject", "accept", "decline"):
        assert client.post(f"/api/v1/campaigns/{drafts[name]}/submit", headers=auth("manager"))
    requests_of = {}
    for name in ("accept", "decline"):
        client.post(f"/api/v1/campaigns/{drafts[name]}/approve", headers=auth("cmo"))
        opened = client.patch(
            f"/api/v1/campaigns/{drafts[name]}", json={"budget": "20"}, headers=auth("manager")
        )
        assert opened.status_code == 202, opened.text
        requests_of[name] = opened.json()["change_requests"][0]["request_id"]

    # the sales routes: a rep owned by the executor, under a region owned by someone else
    def unit_of(body: dict[str, Any]) -> str:
        return client.post("/api/v1/sales-units", json=body, headers=auth("cmo")).json()["unit_id"]

    company = unit_of({"name": f"Co {unique_id}", "kind": "company", "owner": "o"})
    region = unit_of({"name": "R", "kind": "region", "owner": "o", "parent_id": company})
    unit_of({"name": "Rep", "kind": "rep", "owner": subject("executor"), "parent_id": region})
    region_target = client.post(
        "/api/v1/sales-targets",
        json={"unit_id": region, "period": "2027-Q2", "amount": "100"},
        headers=auth("cmo"),
    ).json()["target_id"]
    [rep_target] = client.post(
        f"/api/v1/sales-targets/{region_target}/split",
        json={"method": "even"},
        headers=auth("cmo"),
    ).json()
    proposals = [
        client.post(
            f"/api/v1/sales-targets/{rep_target['target_id']}/proposals",
            json={"amount": "50"},
            headers=auth("executor"),
        ).json()["proposal_id"]
        for _ in range(2)
    ]
    requests[("POST", "/api/v1/sales-targets")][0]["unit_id"] = region  # type: ignore[index]
    override = {
        "/api/v1/sales-targets/{target_id}/split": {"target_id": region_target},
        "/api/v1/sales-targets/{target_id}/proposals": {"target_id": rep_target["target_id"]},
        "/api/v1/sales-target-proposals/{proposal_id}/accept": {"proposal_id": proposals[0]},
        "/api/v1/sales-target-proposals/{proposal_id}/reject": {"proposal_id": proposals[1]},
        "/api/v1/campaigns/{campaign_id}/submit": {"campaign_id": drafts["submit"]},
        "/api/v1/campaigns/{campaign_id}/approve": {"campaign_id": drafts["approve"]},
        "/api/v1/campaigns/{campaign_id}/reject": {"campaign_id": drafts["reject"]},
        "/api/v1/change-requests/{request_id}/accept": {"request_id": requests_of["accept"]},
        "/api/v1/change-requests/{request_id}/reject": {"request_id": requests_of["decline"]},
    }
    for (method, path), (body, allowed) in requests.items():
        url = path.format(**{**ids, **override.get(path, {})})
        for role in ("viewer", "executor", "manager", "cmo", "admin"):
            if role in allowed:
                continue
            still = unchanged(planning)
            response = client.request(method, url, json=body, headers=auth(role))
            assert response.status_code == 403, (role, method, url, response.text)
            still()
        if path == "/api/v1/plans/{plan_id}/approve":
            continue
        response = client.request(method, url, json=body, headers=auth(min(allowed)))
        assert response.status_code in (200, 201, 204), (method, url, response.text)
    # approval last (cmo); then a manager's budget change only opens a change request
    approved = client.post(f"/api/v1/plans/{plan_id}/approve", headers=auth("cmo"))
    assert approved.status_code == 200, approved.text
    approved_budget = client.get(f"/api/v1/campaigns/{campaign_id}", headers=auth("viewer"))
    budget = client.patch(
        f"/api/v1/campaigns/{campaign_id}", json={"budget": "2000"}, headers=auth("manager")
    )
    assert budget.status_code == 202, budget.text
    assert budget.json()["budget"] == approved_budget.json()["budget"] != "2000.00"
    assert budget.json()["change_requests"][0]["changes"] == {"budget": "2000"}


def check_tokens(planning: Service) -> None:
    """Only a whole known token opens the API."""
    for header in ("Bearer t-admi", "Bearer t-admin2", "Bearer x", "Basic t-admin", None):
        headers = {} if header is None else {"Authorization": header}
        response = planning.client.get("/api/v1/plans", headers=headers)
        assert response.status_code in (401, 403), (header, response.text)
    assert planning.client.get("/api/v1/plans", headers=auth("admin")).status_code == 200


# -- request size -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["planning", "execution", "measurement", "notifier"])
def test_every_service_refuses_a_body_over_its_limit_with_413(
    name: str, tmp_path, unique_id: str
) -> None:  # type: ignore[no-untyped-def]
    """The limit lives in the shell every service is built on: its setting is honoured, and
    a declared or a streamed oversized body is answered 413 with a JSON body before any route
    parses it (no lifespan here: nothing behind the middleware is reached)."""
    method, url = {
        "planning": ("POST", "/api/v1/plans"),
        "execution": ("POST", f"/api/v1/stages/s-{unique_id}/status"),
        "measurement": ("GET", "/api/v1/kpis/company"),
        "notifier": ("PUT", f"/api/v1/recipients/r-{unique_id}"),
    }[name]
    app = build_app(
        name,
        bootstrap="127.0.0.1:1",
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        chdb_url=f"chdb://{tmp_path / 'unused'}",
        data_dir=tmp_path,
        http_max_body_bytes=64 * 1024,
    )
    body = json.dumps({"name": "x" * (65 * 1024)}).encode()
    headers = {**auth("admin"), "Content-Type": "application/json"}
    client = TestClient(app)
    declared = client.request(method, url, content=body, headers=headers)
    assert_413_response(declared)
    if method != "GET":  # a GET route reads no body; only the declared length applies
        streamed = client.request(
            method,
            url,
            content=(body[i : i + 4096] for i in range(0, len(body), 4096)),
            headers=headers,
        )
        assert "content-length" not in streamed.request.headers
        assert_413_response(streamed)


def assert_413_response(response: Any) -> None:
    """A 413 whose JSON body names the body."""
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["detail"][0]["loc"] == ["body"]


def check_streamed_body_limit(planning: Service) -> None:
    """A declared 50 MB body is refused before a byte of it is sent, a chunked one as soon as
    it passes the limit (the client never finishes it, so an answer proves nobody waited for
    the whole body); nothing is written."""
    head = (
        "POST /api/v1/plans HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Authorization: Bearer t-admin\r\nContent-Type: application/json\r\n"
    )
    still = unchanged(planning)
    with socket.create_connection(("127.0.0.1", planning.port), timeout=10) as sock:
        sock.sendall(f"{head}Content-Length: {50 * 1000 * 1000}\r\n\r\n".encode())
        assert_413(read_response(sock))
    with socket.create_connection(("127.0.0.1", planning.port), timeout=10) as sock:
        sock.sendall(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"x" * 65536
        for _ in range(MiB // len(chunk) + 2):  # past the default limit, no final chunk
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        assert_413(read_response(sock))
    still()


def read_response(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes or goes quiet."""
    data = b""
    while True:
        try:
            part = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not part:
            break
        data += part
        if b"\r\n\r\n" in data and data.rstrip().endswith(b"}"):
            break
    return data


def assert_413(raw: bytes) -> None:
    """A 413 answer with a JSON body naming the body."""
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), raw[:300]
    assert b"application/json" in head.lower()
    assert json.loads(body)["detail"][0]["loc"] == ["body"]


# -- webhooks: where they may go, and signatures a receiver verifies -------------------------


class Receiver:
    """A webhook receiver on loopback that keeps what it got."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.posts.append((dict(self.headers.items()), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    found.thread.start()
    yield found
    found.server.shutdown()
    found.server.server_close()


SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def test_webhooks_to_private_addresses_are_refused_at_send_time(receiver: Receiver) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        sender = HttpWebhookSender(client=client, secret=SECRET)
        urls = [receiver.url, "http://localhost:1/hook"]
        # a host name that resolves to a non-public address (this machine's own name does
        # almost everywhere: loopback or a private network) is refused after resolution
        own = socket.gethostname()
        resolved = {info[4][0] for info in socket.getaddrinfo(own, 80, type=socket.SOCK_STREAM)}
        if resolved and all(refused_address(ipaddress.ip_address(a)) for a in resolved):
            urls.append(f"http://{own}:{receiver.port}/hook")
        for url in urls:
            with pytest.raises(DeliveryError) as refused:
                await sender.post_json(url=url, payload={"a": 1}, notification_id="n1")
            assert refused.value.permanent, url
            assert "public" in refused.value.reason, refused.value.reason
    assert receiver.posts == []


async def test_webhook_signature_verifies_and_a_replay_is_refused(receiver: Receiver) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        sender = HttpWebhookSender(client=client, secret=SECRET, allow_private=True)
        await sender.post_json(url=receiver.url, payload={"subject": "s"}, notification_id="n-1")
        stale = HttpWebhookSender(
            client=client,
            secret=SECRET,
            allow_private=True,
            clock=lambda: dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10),
        )
        await stale.post_json(url=receiver.url, payload={"subject": "s"}, notification_id="n-1")
    (headers, body), (old_headers, old_body) = receiver.posts
    verifier = Webhook(SECRET)
    assert verifier.verify(body, headers) == {"subject": "s"}
    assert headers["webhook-id"] == "n-1"
    # the same request again ten minutes later: outside the receiver's tolerance
    with pytest.raises(WebhookVerificationError, match="too old"):
        verifier.verify(old_body, old_headers)
    # a fresh timestamp on the old signature does not verify: the timestamp is signed
    with pytest.raises(WebhookVerificationError):
        verifier.verify(
            old_body, {**old_headers, "webhook-timestamp": headers["webhook-timestamp"]}
        )
    # nor does another body under a valid signature
    with pytest.raises(WebhookVerificationError):
        verifier.verify(b'{"subject":"t"}', headers)


async def test_webhook_goes_to_the_address_checked_after_resolution(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The POST connects to the public address the lookup returned (no second lookup that DNS
    could answer differently), naming the host in Host and TLS; a name with any non-public
    address is refused."""
    answers = {
        "hooks.example.com": ["93.184.216.34"],
        "rebind.example.com": ["93.184.216.34", "10.0.0.7"],
    }

    async def getaddrinfo(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
            for address in answers[host]
        ]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    sent: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        sender = HttpWebhookSender(client=client, secret=SECRET)
        await sender.post_json(
            url="https://hooks.example.com:8443/hook", payload={"a": 1}, notification_id="n1"
        )
        with pytest.raises(DeliveryError, match="non-public") as refused:
            await sender.post_json(
                url="https://rebind.example.com/hook", payload={"a": 1}, notification_id="n2"
            )
        assert refused.value.permanent
    (request,) = sent
    assert str(request.url) == "https://93.184.216.34:8443/hook"
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"
    assert Webhook(SECRET).verify(request.content, dict(request.headers)) == {"a": 1}
