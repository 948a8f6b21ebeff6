"""Notifier HTTP API on a SQLite file (no broker): validation names the field, access rules."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from services.notifier import domain, store
from services.notifier.app import create_app
from services.notifier.settings import NotifierSettings
from shared.sql import make_engine, utcnow

ADMIN = {"Authorization": "Bearer admin-token"}
BOB = {"Authorization": "Bearer bob-token"}
VALID = {"email": "bob@example.com", "channels": ["email"], "name": "Bob"}


@pytest.fixture
def client(tmp_path) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    settings = NotifierSettings(
        kafka_bootstrap="127.0.0.1:1",
        tokens={
            "admin-token": {"subject": "root", "role": "admin"},
            "bob-token": {"subject": "bob", "role": "executor"},
        },
    )
    app = create_app(settings)
    engine = make_engine(f"sqlite:///{tmp_path / 'api.db'}")
    store.create_schema(engine)
    app.state.engine = engine  # the lifespan (broker, worker) is not started here
    yield TestClient(app)
    engine.dispose()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**VALID, "email": "not-an-address"}, "email"),
        ({**VALID, "channels": ["sms"]}, "channels.0"),
        ({**VALID, "channels": ["email", "email"]}, "channels"),
        ({**VALID, "webhook_url": "ftp://example.com/hook"}, "webhook_url"),
        ({**VALID, "muted_event_types": ["kpi.snapshot"]}, "muted_event_types.0"),
        ({**VALID, "phone": "+1"}, "phone"),
    ],
)
def test_invalid_recipient_is_rejected_naming_the_field(
    client: TestClient, body: dict, field: str
) -> None:
    response = client.put("/api/v1/recipients/bob", headers=ADMIN, json=body)
    assert response.status_code == 422
    assert field in [error["field"] for error in response.json()["detail"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channels": ["email"]}, "email"),
        ({"channels": ["webhook"], "email": "b@example.com"}, "webhook_url"),
    ],
)
def test_enabled_channel_needs_its_address(client: TestClient, body: dict, field: str) -> None:
    response = client.put("/api/v1/recipients/bob", headers=ADMIN, json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]
    assert client.get("/api/v1/recipients/bob", headers=ADMIN).status_code == 404


def test_put_creates_then_replaces_and_get_returns_it(client: TestClient) -> None:
    created = client.put("/api/v1/recipients/bob", headers=BOB, json=VALID)
    assert created.status_code == 201
    replaced = client.put(
        "/api/v1/recipients/bob",
        headers=ADMIN,
        json={
            "webhook_url": "https://hooks.example.com/bob",
            "channels": ["webhook"],
            "muted_event_types": ["stage.completed"],
        },
    )
    assert replaced.status_code == 200
    got = client.get("/api/v1/recipients/bob", headers=BOB).json()
    assert {key: got[key] for key in ("id", "email", "webhook_url", "channels", "name")} == {
        "id": "bob",
        "email": None,
        "webhook_url": "https://hooks.example.com/bob",
        "channels": ["webhook"],
        "name": None,
    }
    assert got["muted_event_types"] == ["stage.completed"]
    assert got["created_at"] == created.json()["created_at"]


def test_access_rules(client: TestClient) -> None:
    assert client.put("/api/v1/recipients/bob", json=VALID).status_code == 401
    assert client.put("/api/v1/recipients/ann", headers=BOB, json=VALID).status_code == 403
    assert client.get("/api/v1/recipients/ann", headers=BOB).status_code == 403
    assert client.get("/api/v1/recipients/nobody", headers=ADMIN).status_code == 404
    listing = client.get("/api/v1/notifications", headers=BOB, params={"recipient": "ann"})
    assert listing.status_code == 403


def test_delivery_log_lists_newest_first_with_filters(client: TestClient) -> None:
    now = utcnow()
    drafts = []
    for offset, recipient in enumerate(("bob", "ann", "bob")):
        drafts.append(
            domain.NotificationDraft(
                id=str(uuid.uuid4()),
                recipient=recipient,
                channel="email",
                subject=f"s{offset}",
                body="b",
                status="pending",
                last_error=None,
                cause_event_id=uuid.uuid4(),
                cause_event_type="stage.overdue",
                campaign_id="c1",
                created_at=now + dt.timedelta(seconds=offset),
                next_attempt_at=now,
            )
        )
    with store.UnitOfWork(client.app.state.engine) as uow:  # type: ignore[attr-defined]
        store.add_notifications(session=uow.session, drafts=drafts, now=now)
        uow.commit()

    everything = client.get("/api/v1/notifications", headers=ADMIN).json()
    assert [item["subject"] for item in everything["items"]] == ["s2", "s1", "s0"]
    mine = client.get("/api/v1/notifications", headers=BOB).json()
    assert [item["subject"] for item in mine["items"]] == ["s2", "s0"]
    assert set(mine["items"][0]) == {
        "id",
        "recipient",
        "channel",
        "subject",
        "body",
        "status",
        "attempts",
        "last_error",
        "cause_event_id",
        "cause_event_type",
        "campaign_id",
        "created_at",
        "next_attempt_at",
        "delivered_at",
    }
    limited = client.get("/api/v1/notifications", headers=ADMIN, params={"limit": 1}).json()
    assert limited["count"] == 1
    assert (
        client.get("/api/v1/notifications", headers=ADMIN, params={"status": "delivered"}).json()[
            "items"
        ]
        == []
    )
    bad = client.get("/api/v1/notifications", headers=ADMIN, params={"status": "lost"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["field"] == "status"
    assert (
        client.get("/api/v1/notifications", headers=ADMIN, params={"limit": 0}).status_code == 422
    )
