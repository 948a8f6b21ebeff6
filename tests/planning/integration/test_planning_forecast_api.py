"""A campaign's forecast in planning: the model measurement publishes at approval is kept once
(the first stands) and shown next to the planned figures and the actual spend."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import httpx
import pytest
from planning_kit import auth

from shared.events.kpi import CampaignModelled, ModelBand
from shared.publisher import EventPublisher

pytestmark = pytest.mark.integration
CMO, MANAGER, VIEWER = auth("t-cmo"), auth("t-manager"), auth("t-viewer")


def modelled(campaign_id: str, leads: str) -> CampaignModelled:
    return CampaignModelled(
        campaign_id=campaign_id,
        as_of=dt.datetime(2027, 3, 1, tzinfo=dt.UTC),
        currency="EUR",
        budget=Decimal("1000.00"),
        match="channel",
        peers=4,
        figures={"leads": ModelBand(p10=Decimal(30), p50=Decimal(leads), p90=Decimal(50))},
    )


def test_the_model_at_approval_is_kept_once_beside_planned_and_actual(
    planning: httpx.Client, kafka_bootstrap: str
) -> None:  # type: ignore[no-untyped-def]
    plan_id = planning.post(
        "/api/v1/plans",
        json={"name": "Forecasts", "period_start": "2027-01-01", "period_end": "2027-12-31"},
        headers=CMO,
    ).json()["plan_id"]
    campaign_id = planning.post(
        f"/api/v1/plans/{plan_id}/campaigns",
        json={
            "name": "Modelled",
            "channel": "search",
            "owner": "ann",
            "budget": "1000.00",
            "start_date": "2027-03-01",
            "end_date": "2027-04-30",
        },
        headers=MANAGER,
    ).json()["campaign_id"]
    path = f"/api/v1/campaigns/{campaign_id}/forecast"
    draft = planning.post(path, headers=VIEWER).json()
    assert (draft["status"], draft["modelled"]) == ("not_approved", None)
    assert draft["planned"] == {
        "budget": "1000.00",
        "currency": "EUR",
        "start_date": "2027-03-01",
        "end_date": "2027-04-30",
    }
    assert draft["actual"] == {"spend": "0.00"}
    campaign = f"/api/v1/campaigns/{campaign_id}"
    assert planning.post(f"{campaign}/submit", headers=MANAGER).status_code == 200
    assert planning.post(f"{campaign}/approve", headers=CMO).status_code == 200
    assert planning.post(path, headers=VIEWER).json()["status"] == "pending"

    with EventPublisher(kafka_bootstrap, source="measurement") as events:
        events.publish(modelled(campaign_id, "40"))
        events.publish(modelled(campaign_id, "99"))  # a later model does not replace it
    deadline, body = time.monotonic() + 30, {}
    while time.monotonic() < deadline:
        body = planning.post(path, headers=VIEWER).json()
        if body["status"] == "modelled":
            break
        time.sleep(0.2)
    time.sleep(1)  # the second event, on the same partition, has been consumed by now
    body = planning.post(path, headers=VIEWER).json()
    assert body["status"] == "modelled"
    assert body["modelled"]["figures"] == {"leads": {"p10": "30", "p50": "40", "p90": "50"}}
    assert (body["modelled"]["match"], body["modelled"]["peers"]) == ("channel", 4)
    assert planning.post("/api/v1/campaigns/nope/forecast", headers=VIEWER).status_code == 404
    assert planning.post(path).status_code == 401
