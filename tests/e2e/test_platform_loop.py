"""The whole loop on the embedded stack: `mrm up` as processes, plan over HTTP, ingest events
with a plain kafka-python producer, and watch KPIs, thresholds, alerts, e-mail and webhooks."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from kafka import KafkaProducer

from shared.embedded import free_port
from shared.kafka import ERROR_HEADER, ORIGINAL_TOPIC_HEADER
from shared.topics import AD_METRICS, EXECUTION, KPI, LEADS, NOTIFICATIONS, SALES, SPEND, dlq

pytestmark = pytest.mark.e2e

TOKENS = {
    "e2e-admin": {"subject": "root", "role": "admin"},
    "e2e-manager": {"subject": "ann", "role": "manager"},
}
ADMIN = {"Authorization": "Bearer e2e-admin"}
MANAGER = {"Authorization": "Bearer e2e-manager"}


class Mailbox:
    """A real SMTP server (aiosmtpd) on loopback keeping what it receives."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, _server, _session, envelope) -> str:  # type: ignore[no-untyped-def]
        self.messages.append(message_from_bytes(envelope.original_content))
        return "250 OK"


class WebhookReceiver:
    """A local HTTP endpoint recording the JSON POSTs it receives."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/mrm"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


def child_pids(parent: int) -> set[int]:
    """Processes whose parent is ``parent`` (read from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`mrm up` as a process (embedded broker, chDB, SQLite), with a mailbox and a webhook."""
    data_dir = tmp_path_factory.mktemp("mrm")
    mailbox, webhook = Mailbox(), WebhookReceiver()
    mailbox.controller.start()
    webhook.thread.start()
    ports = {name: free_port() for name in ("planning", "execution", "measurement", "notifier")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("MRM_")}
    env.update(
        {
            "MRM_DATA_DIR": str(data_dir),
            "MRM_TOKENS": json.dumps(TOKENS),
            "MRM_SMTP_HOST": "127.0.0.1",
            "MRM_SMTP_PORT": str(mailbox.port),
            "MRM_EXECUTION_SCHEDULER_INTERVAL_S": "1",
            "MRM_MEASUREMENT_EVALUATE_INTERVAL_S": "0.3",
            "MRM_MEASUREMENT_REALLOCATION_INTERVAL_S": "0.5",
            "MRM_NOTIFIER_RETRY_INITIAL_S": "0.2",
            **{f"MRM_{name.upper()}_PORT": str(port) for name, port in ports.items()},
        }
    )
    log = open(data_dir / "up.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "mrm.cli", "up"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    runtime_file = data_dir / "runtime.json"
    try:
        deadline = time.monotonic() + 150
        while b"MRM platform is up" not in (data_dir / "up.log").read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((data_dir / "up.log").read_text())
            time.sleep(0.3)
        runtime = json.loads(runtime_file.read_text())
        children = child_pids(process.pid)
        yield {
            "urls": runtime["urls"],
            "bootstrap": runtime["kafka_bootstrap"],
            "mailbox": mailbox,
            "webhook": webhook,
            "process": process,
            "children": children,
            "log": data_dir / "up.log",
        }
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
        log.close()
        mailbox.controller.stop()
        webhook.server.shutdown()


def eventually(check: Callable[[], Any], *, timeout_s: float = 45.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


def envelope(event_type: str, data: dict[str, Any], *, event_id: str | None = None) -> bytes:
    """A JSON envelope as another internal system would write it by hand."""
    return json.dumps(
        {
            "event_id": event_id or str(uuid.uuid4()),
            "event_type": event_type,
            "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
            "source": "e2e",
            "schema_version": 1,
            "data": data,
        }
    ).encode()


def records(bootstrap: str, topic: str, match: Callable[[Any], bool]) -> list[Any]:
    """Every record of ``topic`` so far that ``match`` accepts."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1500,
    )
    try:
        return [record for record in consumer if match(record)]
    finally:
        consumer.close()


def about(campaign_id: str) -> Callable[[Any], bool]:
    return lambda record: campaign_id.encode() in record.value


def test_plan_execute_measure_notify(platform: dict[str, Any]) -> None:
    urls, bootstrap = platform["urls"], platform["bootstrap"]
    mailbox, webhook = platform["mailbox"], platform["webhook"]
    http = httpx.Client(timeout=15)

    # -- the people and the plan, over the REST APIs ------------------------------------------
    registered = http.put(
        f"{urls['notifier']}/api/v1/recipients/ann",
        headers=MANAGER,
        json={
            "name": "Ann",
            "email": "ann@example.com",
            "webhook_url": webhook.url,
            "channels": ["email", "webhook"],
        },
    )
    assert registered.status_code in (200, 201), registered.text
    today = dt.date.today()
    plan = http.post(
        f"{urls['planning']}/api/v1/plans",
        headers=MANAGER,
        json={
            "name": "E2E plan",
            "period_start": str(today - dt.timedelta(days=30)),
            "period_end": str(today + dt.timedelta(days=300)),
        },
    )
    assert plan.status_code == 201, plan.text
    plan_id = plan.json()["plan_id"]
    campaign = http.post(
        f"{urls['planning']}/api/v1/plans/{plan_id}/campaigns",
        headers=MANAGER,
        json={
            "name": "E2E search",
            "channel": "search",
            "owner": "ann",
            "budget": "1000.00",
            "start_date": str(today - dt.timedelta(days=5)),
            "end_date": str(today + dt.timedelta(days=25)),
            "gross_margin": "0.5",
        },
    )
    assert campaign.status_code == 201, campaign.text
    campaign_id = campaign.json()["campaign_id"]
    stage = http.post(
        f"{urls['planning']}/api/v1/campaigns/{campaign_id}/stages",
        headers=MANAGER,
        json={
            "name": "Landing page live",
            "assignee": "ann",
            "deadline": (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat(),
        },
    )
    assert stage.status_code == 201, stage.text
    target = http.post(
        f"{urls['planning']}/api/v1/campaigns/{campaign_id}/kpi-targets",
        headers=MANAGER,
        json={"kpi": "cpl", "target": "50"},
    )
    assert target.status_code == 201, target.text
    bad_request = http.post(
        f"{urls['planning']}/api/v1/campaigns/{campaign_id}/kpi-targets",
        headers=MANAGER,
        json={"kpi": "happiness", "target": "1"},
    )
    assert bad_request.status_code == 422
    assert bad_request.json()["detail"][0]["loc"] == ["body", "kpi"]

    # execution must know the budget before spend arrives, or 80 % and 100 % would be judged
    # together on the first spend event it sees
    eventually(
        lambda: (
            http.get(
                f"{urls['execution']}/api/v1/campaigns/{campaign_id}/progress", headers=ADMIN
            ).status_code
            == 200
        ),
        what="execution projection",
    )

    # -- other internal systems publish, with a plain kafka-python producer --------------------
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    key = campaign_id.encode()

    def send(
        topic: str,
        event_type: str,
        data: dict[str, Any],
        *,
        event_id: str | None = None,
        message_key: bytes = key,
    ) -> None:
        producer.send(topic, key=message_key, value=envelope(event_type, data, event_id=event_id))

    big_spend_id = str(uuid.uuid4())
    send(
        SPEND,
        "spend.recorded",
        {"campaign_id": campaign_id, "channel": "search", "amount": "500.00", "currency": "USD"},
    )
    send(
        SPEND,
        "spend.recorded",
        {"campaign_id": campaign_id, "channel": "search", "amount": 350.5, "currency": "USD"},
        event_id=big_spend_id,
    )
    # the same event delivered again: counts once (else spend 1201 would cross 100 %)
    send(
        SPEND,
        "spend.recorded",
        {"campaign_id": campaign_id, "channel": "search", "amount": 350.5, "currency": "USD"},
        event_id=big_spend_id,
    )
    send(
        AD_METRICS,
        "ad.metrics_reported",
        {"campaign_id": campaign_id, "channel": "search", "impressions": 40000, "clicks": 1000},
    )
    funnel = {
        "l1": ["visitor", "lead", "mql", "customer"],
        "l2": ["visitor", "lead"],
        "l3": ["visitor"],
        "l4": ["lead", "sql"],
        "l5": ["visitor", "lead", "lost"],
    }
    for lead, stages in funnel.items():
        lead_id = f"{campaign_id}-{lead}"
        for stage_name in stages:
            data: dict[str, Any] = {
                "lead_id": lead_id,
                "campaign_id": campaign_id,
                "channel": "search",
                "stage": stage_name,
            }
            if stage_name == "customer":
                data["customer_id"] = f"{campaign_id}-c1"
            send(LEADS, "lead.stage_changed", data, message_key=lead_id.encode())
    send(
        SALES,
        "sale.completed",
        {
            "order_id": f"{campaign_id}-o1",
            "customer_id": f"{campaign_id}-c1",
            "campaign_id": campaign_id,
            "amount": "2000.00",
            "discount_amount": "100.00",
            "currency": "USD",
        },
        message_key=f"{campaign_id}-c1".encode(),
    )
    producer.send(SPEND, key=key, value=b'{"event_id": "' + key + b'", "oops": ')
    send(
        SPEND,
        "spend.recorded",
        {"campaign_id": campaign_id, "channel": "search", "amount": "-3", "currency": "USD"},
    )
    producer.flush()

    # -- KPIs equal to the ones computed by hand -----------------------------------------------
    def kpis() -> dict[str, Any] | None:
        response = http.get(
            f"{urls['measurement']}/api/v1/kpis/campaigns/{campaign_id}", headers=MANAGER
        )
        body = response.json() if response.status_code == 200 else None
        return (
            body
            if body
            and body["spend"] == "850.50"
            and body["revenue"] == "2000.00"
            and body["leads"] == 4
            else None
        )

    values = eventually(kpis, what="KPIs of the campaign")
    spend = Decimal("850.50")  # 500 + 350.50, the duplicate counted once
    leads = 4  # l1, l2, l4, l5 reached `lead`; l3 did not
    assert Decimal(values["spend"]) == spend
    assert values["impressions"] == 40000 and values["clicks"] == 1000
    assert Decimal(values["ctr"]) == Decimal("0.025")  # 1000 / 40000
    assert Decimal(values["cpc"]) == Decimal("0.85")  # 850.50 / 1000, to the cent
    assert values["leads"] == leads
    assert Decimal(values["cpl"]) == Decimal("212.63")  # 850.50 / 4 = 212.625
    assert values["new_customers"] == 1
    assert Decimal(values["cac"]) == spend  # 850.50 / 1
    assert Decimal(values["revenue"]) == Decimal("2000.00")
    # ROMI = (2000 × 0.5 − 850.50) / 850.50 = 149.50 / 850.50
    assert Decimal(values["romi"]) == (Decimal("149.50") / spend).quantize(Decimal("1e-6"))
    conversions = values["conversions"]
    assert Decimal(conversions["lead_to_mql"]) == Decimal("0.5")  # l1, l4 of four leads

    # -- execution: 80 % crossed once, 100 % never (the duplicate did not count) --------------
    crossed = eventually(
        lambda: records(
            bootstrap,
            EXECUTION,
            lambda r: about(campaign_id)(r) and b"budget.threshold_crossed" in r.value,
        ),
        what="budget.threshold_crossed",
    )
    assert [json.loads(r.value)["data"]["threshold_pct"] for r in crossed] == [80]
    progress = http.get(
        f"{urls['execution']}/api/v1/campaigns/{campaign_id}/progress", headers=MANAGER
    ).json()
    assert progress["spend"] == "850.50" and progress["thresholds_crossed"] == [80]
    eventually(
        lambda: records(
            bootstrap,
            EXECUTION,
            lambda r: about(campaign_id)(r) and b"stage.deadline_approaching" in r.value,
        ),
        what="stage.deadline_approaching",
    )

    # -- measurement: the CPL target (≤ 50) is breached ----------------------------------------
    breached = eventually(
        lambda: records(
            bootstrap, KPI, lambda r: about(campaign_id)(r) and b"kpi.target_breached" in r.value
        ),
        what="kpi.target_breached",
    )
    assert json.loads(breached[0].value)["data"]["kpi"] == "cpl"

    # -- notifier: e-mail and webhook for each cause, recorded and published ------------------
    def subjects() -> list[str]:
        return [str(m["Subject"]) for m in mailbox.messages if m["To"] == "ann@example.com"]

    eventually(lambda: len(subjects()) >= 3, what="three e-mails to ann")
    joined = "\n".join(subjects())
    assert "80" in joined and "cpl" in joined.lower() and "Landing page live" in joined
    hook_causes = eventually(
        lambda: (
            {h.get("cause_event_type") or h.get("event_type") for h in webhook.received}
            >= {"budget.threshold_crossed", "kpi.target_breached", "stage.deadline_approaching"}
            and {h.get("cause_event_type") or h.get("event_type") for h in webhook.received}
        ),
        what="webhooks for the three causes",
    )
    assert "budget.threshold_crossed" in hook_causes
    logged = http.get(
        f"{urls['notifier']}/api/v1/notifications", params={"recipient": "ann"}, headers=MANAGER
    ).json()["items"]
    delivered = [n for n in logged if n["status"] == "delivered"]
    per_cause = {(n["cause_event_id"], n["channel"]) for n in delivered}
    assert len(per_cause) == len(delivered) >= 6  # at most once per cause and channel
    eventually(
        lambda: records(
            bootstrap,
            NOTIFICATIONS,
            lambda r: (
                b"notification.delivered" in r.value
                and b'"recipient":"ann"' in r.value.replace(b" ", b"")
            ),
        ),
        what="notification.delivered",
    )

    # -- bad input reached the DLQ with a reason naming the field -----------------------------
    dead = eventually(
        lambda: records(bootstrap, dlq(SPEND), lambda r: r.key == key), what="dead letters"
    )
    reasons = sorted(dict(r.headers)[ERROR_HEADER].decode() for r in dead)
    assert any(reason.startswith("body: not valid UTF-8 JSON") for reason in reasons)
    assert any(reason.startswith("data.amount:") for reason in reasons)
    assert {dict(r.headers)[ORIGINAL_TOPIC_HEADER] for r in dead} == {SPEND.encode()}
    producer.close()


def test_budget_lines_approval_and_change_requests_across_services(
    platform: dict[str, Any],
) -> None:
    """A campaign drawing from a budget line is approved; a manager's budget change waits as a
    change request — execution and measurement keep the approved budget — until it is accepted;
    spend reaches planning's budget view, execution's progress and measurement's KPIs alike."""
    urls, bootstrap = platform["urls"], platform["bootstrap"]
    http = httpx.Client(timeout=15)
    today = dt.date.today()
    plan = http.post(
        f"{urls['planning']}/api/v1/plans",
        headers=MANAGER,
        json={
            "name": "E2E budget",
            "period_start": str(today - dt.timedelta(days=10)),
            "period_end": str(today + dt.timedelta(days=80)),
            "budget": "50000.00",
        },
    )
    assert plan.status_code == 201, plan.text
    plan_id, currency = plan.json()["plan_id"], plan.json()["currency"]
    line = http.post(
        f"{urls['planning']}/api/v1/plans/{plan_id}/budget-lines",
        headers=MANAGER,
        json={"name": "Brand X", "brand": "X", "amount": "20000.00"},
    )
    assert line.status_code == 201, line.text
    campaign = http.post(
        f"{urls['planning']}/api/v1/plans/{plan_id}/campaigns",
        headers=MANAGER,
        json={
            "name": "E2E brand X",
            "channel": "display",
            "owner": "ann",
            "budget": "10000.00",
            "start_date": str(today - dt.timedelta(days=5)),
            "end_date": str(today + dt.timedelta(days=25)),
            "line_id": line.json()["line_id"],
        },
    )
    assert campaign.status_code == 201, campaign.text
    campaign_id = campaign.json()["campaign_id"]
    path = f"{urls['planning']}/api/v1/campaigns/{campaign_id}"
    assert http.post(f"{path}/submit", headers=MANAGER).status_code == 200
    assert http.post(f"{path}/approve", headers=MANAGER).status_code == 403
    assert http.post(f"{path}/approve", headers=ADMIN).json()["status"] == "approved"

    def progress() -> dict[str, Any]:
        return http.get(  # type: ignore[no-any-return]
            f"{urls['execution']}/api/v1/campaigns/{campaign_id}/progress", headers=ADMIN
        ).json()

    def measured() -> dict[str, Any]:
        return http.get(  # type: ignore[no-any-return]
            f"{urls['measurement']}/api/v1/kpis/campaigns/{campaign_id}", headers=ADMIN
        ).json()

    eventually(
        lambda: progress().get("status") == "approved" and progress().get("budget") == "10000.00",
        what="execution to see the approved campaign",
    )
    requested = http.patch(path, headers=MANAGER, json={"budget": "15000.00"})
    assert requested.status_code == 202, requested.text
    assert requested.json()["budget"] == "10000.00"
    request_id = requested.json()["change_requests"][0]["request_id"]
    # planning announces the request; its consumers have read past it and keep the approved budget
    eventually(
        lambda: records(
            bootstrap,
            "mrm.planning.v1",
            lambda r: b"campaign.change_requested" in r.value and campaign_id.encode() in r.value,
        ),
        what="the change request on mrm.planning.v1",
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.send(
        SPEND,
        key=campaign_id.encode(),
        value=envelope(
            "spend.recorded",
            {
                "campaign_id": campaign_id,
                "channel": "display",
                "amount": "3000.00",
                "currency": currency,
            },
        ),
    )
    producer.flush()
    producer.close()
    eventually(lambda: progress()["spend"] == "3000.00", what="execution to count the spend")
    eventually(lambda: measured().get("spend") == "3000.00", what="measurement to count the spend")
    assert progress()["budget"] == "10000.00" and measured()["budget"] == "10000.00"

    def budget_view() -> dict[str, Any]:
        return http.get(  # type: ignore[no-any-return]
            f"{urls['planning']}/api/v1/plans/{plan_id}/budget", headers=ADMIN
        ).json()

    view = eventually(
        lambda: (v := budget_view())["total"]["actual"] == "3000.00" and v,
        what="planning's budget view to show the spend",
    )
    [line_node] = view["total"]["lines"]
    assert (line_node["planned"], line_node["committed"], line_node["actual"]) == (
        "20000.00",
        "10000.00",
        "3000.00",
    )
    accepted = http.post(
        f"{urls['planning']}/api/v1/change-requests/{request_id}/accept", headers=ADMIN
    )
    assert accepted.status_code == 200 and accepted.json()["budget"] == "15000.00", accepted.text
    eventually(lambda: progress()["budget"] == "15000.00", what="execution to see the new budget")
    eventually(lambda: measured().get("budget") == "15000.00", what="measurement's new budget")
    trail = http.get(
        f"{urls['planning']}/api/v1/audit", params={"entity_id": campaign_id}, headers=ADMIN
    ).json()
    assert [entry["action"] for entry in reversed(trail)] == [
        "created",
        "submitted",
        "approved",
        "change_requested",
        "updated",
    ]


def test_a_rule_in_apply_mode_moves_budget_across_services(platform: dict[str, Any]) -> None:
    """A plan's rule (CPL above 60 gives half the unspent budget to the cheapest campaign of
    the line, applied at once): measurement fires it from the lead and spend streams, planning
    moves the money and names the rule, execution and measurement see the new budgets, and
    the plan's owner reads about it by e-mail."""
    urls, bootstrap, mailbox = platform["urls"], platform["bootstrap"], platform["mailbox"]
    http = httpx.Client(timeout=15)
    registered = http.put(
        f"{urls['notifier']}/api/v1/recipients/ann",
        headers=ADMIN,
        json={"name": "Ann", "email": "ann@example.com", "channels": ["email"]},
    )
    assert registered.status_code in (200, 201), registered.text
    today = dt.date.today()
    plan = http.post(
        f"{urls['planning']}/api/v1/plans",
        headers=MANAGER,
        json={
            "name": "E2E rules",
            "period_start": str(today - dt.timedelta(days=10)),
            "period_end": str(today + dt.timedelta(days=80)),
        },
    )
    assert plan.status_code == 201, plan.text
    plan_id, currency = plan.json()["plan_id"], plan.json()["currency"]
    line = http.post(
        f"{urls['planning']}/api/v1/plans/{plan_id}/budget-lines",
        headers=MANAGER,
        json={"name": "Search", "amount": "30000.00"},
    ).json()
    campaigns = {}
    for name in ("Dear", "Cheap"):
        created = http.post(
            f"{urls['planning']}/api/v1/plans/{plan_id}/campaigns",
            headers=MANAGER,
            json={
                "name": f"E2E {name}",
                "channel": "search",
                "owner": "ann",
                "budget": "10000.00",
                "start_date": str(today - dt.timedelta(days=5)),
                "end_date": str(today + dt.timedelta(days=25)),
                "line_id": line["line_id"],
            },
        )
        assert created.status_code == 201, created.text
        campaign_id = created.json()["campaign_id"]
        path = f"{urls['planning']}/api/v1/campaigns/{campaign_id}"
        assert http.post(f"{path}/submit", headers=MANAGER).status_code == 200
        assert http.post(f"{path}/approve", headers=ADMIN).status_code == 200
        campaigns[name] = campaign_id
    rule = http.post(
        f"{urls['planning']}/api/v1/plans/{plan_id}/reallocation-rules",
        headers=ADMIN,
        json={
            "kpi": "cpl",
            "comparison": "gt",
            "threshold": "60",
            "action": "best_in_line",
            "recipient_threshold": "40",
            "share": "0.5",
            "mode": "apply",
        },
    )
    assert rule.status_code == 201, rule.text
    rule_id = rule.json()["rule_id"]
    # CPL 2,000 / 20 = 100 for Dear, 2,000 / 80 = 25 for Cheap
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for name, leads in (("Dear", 20), ("Cheap", 80)):
        campaign_id = campaigns[name]
        spend = {"campaign_id": campaign_id, "channel": "search", "amount": "2000.00"}
        producer.send(
            SPEND,
            key=campaign_id.encode(),
            value=envelope("spend.recorded", {**spend, "currency": currency}),
        )
        for index in range(leads):
            lead = {"lead_id": f"{campaign_id}-{index}", "campaign_id": campaign_id}
            producer.send(
                LEADS,
                key=lead["lead_id"].encode(),
                value=envelope(
                    "lead.stage_changed", {**lead, "channel": "search", "stage": "lead"}
                ),
            )
    producer.flush()
    producer.close()

    def moves() -> list[dict[str, Any]]:
        return http.get(  # type: ignore[no-any-return]
            f"{urls['planning']}/api/v1/plans/{plan_id}/reallocations", headers=ADMIN
        ).json()

    [move] = eventually(moves, what="the rule's move in planning's history")
    assert (move["source"], move["rule_id"], move["from_id"], move["to_id"], move["amount"]) == (
        "rule",
        rule_id,
        campaigns["Dear"],
        campaigns["Cheap"],
        "4000.00",  # half of 10,000 − 2,000
    )
    for name, budget in (("Dear", "6000.00"), ("Cheap", "14000.00")):
        campaign_id = campaigns[name]
        eventually(
            lambda campaign_id=campaign_id, budget=budget: (
                http.get(
                    f"{urls['execution']}/api/v1/campaigns/{campaign_id}/progress", headers=ADMIN
                )
                .json()
                .get("budget")
                == budget
            ),
            what=f"execution to see {name}'s new budget",
        )
        eventually(
            lambda campaign_id=campaign_id, budget=budget: (
                http.get(
                    f"{urls['measurement']}/api/v1/kpis/campaigns/{campaign_id}", headers=ADMIN
                )
                .json()
                .get("budget")
                == budget
            ),
            what=f"measurement to see {name}'s new budget",
        )
    mail = eventually(
        lambda: [
            m
            for m in mailbox.messages
            if m["To"] == "ann@example.com" and "reallocation rule" in str(m["Subject"])
        ],
        what="the plan owner's e-mail about the move",
    )
    assert len(mail) == 1 and "4,000.00" in str(mail[0]["Subject"]), mail[0]["Subject"]
    time.sleep(2)  # later rounds of the monitor: the same episode moves nothing more
    assert len(moves()) == 1


def test_ctrl_c_stops_everything(platform: dict[str, Any]) -> None:
    process, children = platform["process"], platform["children"]
    assert len(children) >= 5, "the broker and four services run as child processes"
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0
    assert not [pid for pid in children if alive(pid)], "no orphan is left behind"
