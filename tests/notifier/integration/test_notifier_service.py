"""The notifier end to end: real Tansu broker, SQLite/PostgreSQL, SMTP server and webhook receiver.

Planning and execution events are published like the other services would; recipients are
registered over the API; the e-mails and webhooks that arrive, the delivery log and the events
on ``mrm.notifications.v1`` are what the test asserts.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer
from notifier_testkit import SmtpServer, WebhookReceiver
from standardwebhooks import Webhook

from services.notifier.app import create_app
from services.notifier.senders import NOTIFICATION_ID_HEADER, webhook_key
from services.notifier.settings import NotifierSettings
from shared import topics
from shared.events import new_envelope
from shared.events.execution import BudgetThresholdCrossed, StageDeadlineApproaching, StageOverdue
from shared.events.planning import CampaignPlanned, PlanCreated, StageScheduled
from shared.publisher import EventPublisher

pytestmark = pytest.mark.integration

SECRET = "webhook-secret"
ADMIN = {"Authorization": "Bearer admin-token"}
TERMINAL = {"delivered", "failed", "skipped"}


def wait_for(predicate: Callable[[], Any], *, timeout_s: float = 60.0, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.1)


def read_topic(bootstrap: str, topic: str, *, keep: Callable[[dict], bool], expect: int) -> list:
    """Envelopes on ``topic`` that ``keep`` selects (waits until ``expect`` of them are there)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=2000,
    )
    found: list[dict] = []
    deadline = time.monotonic() + 30
    try:
        while len(found) < expect and time.monotonic() < deadline:
            for record in consumer:
                document = json.loads(record.value)
                if keep(document):
                    found.append(document)
    finally:
        consumer.close()
    return found


def test_causes_become_one_email_and_one_webhook_each_with_retries(
    kafka_bootstrap: str,
    database_url: str,
    unique_id: str,
    smtp_server: SmtpServer,
    webhook_receiver: WebhookReceiver,
) -> None:
    ann, bob, dave, carol = (f"{name}-{unique_id}" for name in ("ann", "bob", "dave", "carol"))
    plan_id, campaign_id = f"p-{unique_id}", f"c-{unique_id}"
    settings = NotifierSettings(
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url,
        consumer_group=f"mrm-notifier-{unique_id}",
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_from="mrm@example.com",
        webhook_secret=SECRET,
        webhook_allow_private=True,  # the receiver is on loopback
        max_attempts=4,
        retry_initial_s=0.2,
        poll_interval_s=0.1,
        tokens={
            "admin-token": {"subject": "root", "role": "admin"},
            "bob-token": {"subject": bob, "role": "executor"},
        },
    )
    bob_auth = {"Authorization": "Bearer bob-token"}
    webhook_receiver.fail(f"/hooks/{bob}", 503, 503)
    webhook_receiver.fail(f"/hooks/{dave}", *([503] * 10))

    with TestClient(create_app(settings)) as client:
        # --- recipients over the API -------------------------------------------------------
        response = client.put(
            f"/api/v1/recipients/{ann}",
            headers=ADMIN,
            json={
                "name": "Ann",
                "email": f"{ann}@example.com",
                "webhook_url": f"{webhook_receiver.base_url}/hooks/{ann}",
                "channels": ["email", "webhook"],
            },
        )
        assert response.status_code == 201, response.text
        response = client.put(
            f"/api/v1/recipients/{bob}",
            headers=bob_auth,  # an executor registers itself
            json={
                "email": f"{bob}@example.com",
                "webhook_url": f"{webhook_receiver.base_url}/hooks/{bob}",
                "channels": ["email", "webhook"],
            },
        )
        assert response.status_code == 201, response.text
        response = client.put(
            f"/api/v1/recipients/{dave}",
            headers=ADMIN,
            json={
                "webhook_url": f"{webhook_receiver.base_url}/hooks/{dave}",
                "channels": ["webhook"],
            },
        )
        assert response.status_code == 201, response.text
        assert client.put(f"/api/v1/recipients/{ann}", headers=bob_auth, json={}).status_code == 403

        # --- events, as planning and execution publish them -------------------------------
        deadline = dt.datetime(2027, 3, 1, 17, 0, tzinfo=dt.UTC)
        with EventPublisher(kafka_bootstrap, source="test") as publisher:
            publisher.publish(
                PlanCreated(
                    plan_id=plan_id,
                    name="Plan 2027",
                    period_start=dt.date(2027, 1, 1),
                    period_end=dt.date(2027, 12, 31),
                    currency="EUR",
                    owner=ann,
                )
            )
            publisher.publish(
                CampaignPlanned(
                    campaign_id=campaign_id,
                    plan_id=plan_id,
                    name="Spring Sale",
                    channel="search",
                    owner=ann,
                    budget=Decimal("10000"),
                    currency="EUR",
                    start_date=dt.date(2027, 3, 1),
                    end_date=dt.date(2027, 5, 31),
                )
            )
            for stage_id, assignee in (("s1", bob), ("s2", dave)):
                publisher.publish(
                    StageScheduled(
                        stage_id=f"{stage_id}-{unique_id}",
                        campaign_id=campaign_id,
                        name=f"Stage {stage_id}",
                        deadline=deadline,
                        assignee=assignee,
                    )
                )
            publisher.flush()
            overdue = new_envelope(
                StageOverdue(
                    stage_id=f"s1-{unique_id}",
                    campaign_id=campaign_id,
                    name="Stage s1",
                    deadline=deadline,
                ),
                source="execution",
            )
            crossed = new_envelope(
                BudgetThresholdCrossed(
                    campaign_id=campaign_id,
                    threshold_pct=80,
                    spend=Decimal("8000"),
                    budget=Decimal("10000"),
                    currency="EUR",
                ),
                source="execution",
            )
            for envelope in (overdue, crossed, overdue, crossed):  # each cause delivered twice
                publisher.send_envelope(envelope, topic=topics.EXECUTION, key=campaign_id)
            approaching = publisher.publish(
                StageDeadlineApproaching(
                    stage_id=f"s2-{unique_id}",
                    campaign_id=campaign_id,
                    name="Stage s2",
                    deadline=deadline,
                    hours_left=4,
                )
            )
            # the last message on the campaign's partition: once it is handled, so are the rest
            unregistered = publisher.publish(
                StageOverdue(
                    stage_id=f"s3-{unique_id}",
                    campaign_id=campaign_id,
                    name="Stage s3",
                    deadline=deadline,
                    assignee=carol,
                )
            )

        def settled(envelope_id: object, count: int) -> list[dict] | None:
            items = client.get(
                "/api/v1/notifications", headers=ADMIN, params={"cause_event_id": str(envelope_id)}
            ).json()["items"]
            done = len(items) == count and all(item["status"] in TERMINAL for item in items)
            return items if done else None

        overdue_log = wait_for(lambda: settled(overdue.event_id, 2), what="overdue settled")
        crossed_log = wait_for(lambda: settled(crossed.event_id, 2), what="threshold settled")
        dave_log = wait_for(lambda: settled(approaching.event_id, 1), what="dave settled")
        carol_log = wait_for(lambda: settled(unregistered.event_id, 1), what="carol recorded")
        time.sleep(1.0)  # a duplicate, had it been recorded, would now be visible

        # --- the delivery log ---------------------------------------------------------------
        by_channel = {item["channel"]: item for item in overdue_log}
        assert {item["recipient"] for item in overdue_log} == {bob}
        assert by_channel["email"]["status"] == "delivered"
        assert by_channel["webhook"]["status"] == "delivered"
        assert by_channel["webhook"]["attempts"] == 3  # 503, 503, 200
        assert by_channel["email"]["subject"] == (
            'Overdue: stage "Stage s1" of "Spring Sale" missed its deadline 2027-03-01 17:00 UTC'
        )
        assert {(i["recipient"], i["channel"], i["status"]) for i in crossed_log} == {
            (ann, "email", "delivered"),
            (ann, "webhook", "delivered"),
        }
        (dave_item,) = dave_log
        assert (dave_item["status"], dave_item["attempts"]) == ("failed", 4)
        assert "503" in dave_item["last_error"]
        (carol_item,) = carol_log
        assert (carol_item["recipient"], carol_item["status"], carol_item["channel"]) == (
            carol,
            "skipped",
            "none",
        )
        assert "not registered" in carol_item["last_error"]

        # an executor sees only its own log
        own = client.get("/api/v1/notifications", headers=bob_auth).json()["items"]
        assert {item["recipient"] for item in own} == {bob}
        assert (
            client.get("/api/v1/notifications", headers=bob_auth, params={"recipient": ann})
        ).status_code == 403

    # --- what the channels received: exactly one per cause, recipient and channel --------------
    mails = [m for m in smtp_server.messages if m.rcpt_tos[0].endswith(f"{unique_id}@example.com")]
    assert sorted(m.rcpt_tos[0] for m in mails) == [f"{ann}@example.com", f"{bob}@example.com"]
    bob_mail = next(m for m in mails if m.rcpt_tos == [f"{bob}@example.com"])
    assert bob_mail.message["Subject"] == by_channel["email"]["subject"]
    assert bob_mail.message["From"] == "mrm@example.com"
    assert "Spring Sale" in bob_mail.message.get_content()

    for recipient, tries in ((ann, 1), (bob, 3), (dave, 4)):
        posts = webhook_receiver.received(f"/hooks/{recipient}")
        assert len(posts) == tries
        assert len({post.headers[NOTIFICATION_ID_HEADER] for post in posts}) == 1
        assert [post.status for post in posts].count(200) == (0 if recipient == dave else 1)
        for post in posts:
            assert Webhook(webhook_key(SECRET)).verify(post.body, post.headers) == post.json()
    ann_post = webhook_receiver.received(f"/hooks/{ann}")[0].json()
    assert ann_post["cause_event_id"] == str(crossed.event_id)
    assert ann_post["cause_event_type"] == "budget.threshold_crossed"

    # --- the events other systems consume -------------------------------------------------------
    ours = {ann, bob, dave}
    events = read_topic(
        kafka_bootstrap,
        topics.NOTIFICATIONS,
        keep=lambda doc: doc["data"]["recipient"] in ours,
        expect=5,
    )
    assert len({event["event_id"] for event in events}) == len(events) == 5
    delivered = sorted(
        (e["data"]["cause_event_id"], e["data"]["recipient"], e["data"]["channel"])
        for e in events
        if e["event_type"] == "notification.delivered"
    )
    assert delivered == sorted(
        [
            (str(overdue.event_id), bob, "email"),
            (str(overdue.event_id), bob, "webhook"),
            (str(crossed.event_id), ann, "email"),
            (str(crossed.event_id), ann, "webhook"),
        ]
    )
    (failed,) = [e for e in events if e["event_type"] == "notification.failed"]
    assert (failed["data"]["recipient"], failed["data"]["attempts"]) == (dave, 4)
    bob_webhook = next(
        e for e in events if e["data"]["recipient"] == bob and e["data"]["channel"] == "webhook"
    )
    assert bob_webhook["data"]["attempts"] == 3
