"""The campaign model on the real service (Tansu + chDB): peers published as planning and
ingest events, then modelled over HTTP — from data before the campaign's start only.

Everything happens in 2015 on a channel of this module's own, so no other test's campaigns
are peers."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import uuid
from decimal import Decimal as D

import httpx
import pytest

from services.measurement.warehouse.modelled import saved_models
from shared.events.ingest import LeadStageChanged, SaleCompleted, SpendRecorded
from shared.events.planning import CampaignPlanned
from shared.publisher import EventPublisher
from shared.topics import KPI

pytestmark = pytest.mark.integration
TOKEN = "t-model-viewer"
BEFORE, AFTER = dt.datetime(2015, 3, 1, tzinfo=dt.UTC), dt.datetime(2015, 7, 1, tzinfo=dt.UTC)
# four peers, spend → leads, concave: 1,000 → 20, 2,000 → 35, 4,000 → 55, 8,000 → 80
PEERS = ((1000, 20), (2000, 35), (4000, 55), (8000, 80))


@pytest.fixture
def measurement(measurement_api) -> httpx.Client:  # type: ignore[no-untyped-def]
    return measurement_api(
        bearer=TOKEN, currency="USD", model_interval_s=0.2, own_monitor_group=True
    )


def campaign(campaign_id: str, channel: str, *, start: dt.date, budget: str) -> CampaignPlanned:
    return CampaignPlanned(
        campaign_id=campaign_id,
        plan_id=f"plan-{campaign_id}",
        name=campaign_id,
        channel=channel,
        brand="Acme",
        owner="ann",
        budget=D(budget),
        currency="USD",
        start_date=start,
        end_date=start + dt.timedelta(days=150),
        status="active",
        gross_margin=D("0.5"),
    )


def spend_and_leads(
    events: EventPublisher,
    peer: str,
    channel: str,
    *,
    spend: int,
    leads: int,
    at: dt.datetime,
    prefix: str = "l",
) -> None:
    """The peer's spend (USD) and then its ``leads`` new leads, all at ``at``."""
    events.publish(
        SpendRecorded(campaign_id=peer, channel=channel, amount=D(spend), currency="USD"),
        occurred_at=at,
    )
    for lead in range(leads):
        events.publish(
            LeadStageChanged(
                lead_id=f"{peer}-{prefix}{lead}", campaign_id=peer, channel=channel, stage="lead"
            ),
            occurred_at=at,
        )


def test_a_campaign_is_modelled_from_its_peers_data_before_its_start(
    measurement: httpx.Client, kafka_bootstrap: str
) -> None:
    uid = uuid.uuid4().hex[:8]
    channel = f"model-{uid}"
    modelled = f"new-{uid}"
    with EventPublisher(kafka_bootstrap, source="test") as events:
        for n, (spend, leads) in enumerate(PEERS):
            peer = f"peer{n}-{uid}"
            events.publish(campaign(peer, channel, start=dt.date(2015, 1, 5), budget="9000"))
            spend_and_leads(events, peer, channel, spend=spend, leads=leads, at=BEFORE)
            events.publish(  # revenue 100 a lead, gross profit half of it
                SaleCompleted(
                    order_id=f"{peer}-o",
                    customer_id=f"{peer}-k",
                    campaign_id=peer,
                    channel=channel,
                    amount=D(100 * leads),
                    currency="USD",
                ),
                occurred_at=BEFORE,
            )
        # after the modelled campaign starts: the last peer doubles its spend and leads
        late = f"peer3-{uid}"
        spend_and_leads(events, late, channel, spend=8000, leads=80, at=AFTER, prefix="late")
        events.publish(campaign(modelled, channel, start=dt.date(2015, 6, 1), budget="3000"))

    deadline, body = time.monotonic() + 60, {}
    while time.monotonic() < deadline:
        response = measurement.get(f"/api/v1/campaigns/{modelled}/model")
        body = response.json() if response.status_code == 200 else {}
        total = sum(D(p["spend"]) for p in body.get("peers", []))
        late_leads = measurement.get(f"/api/v1/kpis/campaigns/{late}").json().get("leads")
        if total == D(15000) and late_leads == 160:
            break
        time.sleep(0.3)
    assert late_leads == 160  # the late data is in: the peer has 16,000 and 160 leads in all
    # the late peer counts with what it had before 2015-06-01 only: 8,000 and 80 leads
    assert {p["campaign_id"]: (p["spend"], p["leads"]) for p in body["peers"]} == {
        f"peer{n}-{uid}": (f"{spend}.00", str(leads)) for n, (spend, leads) in enumerate(PEERS)
    }
    assert body["as_of"] == "2015-06-01T00:00:00Z"
    assert (body["match"], body["currency"], body["budget"]) == ("channel_brand", "USD", "3000.00")
    assert all(p["similarity"] == "1" for p in body["peers"])
    leads = body["figures"]["leads"]
    # the curve through the four peers, at 3,000: between 35 (2,000) and 55 (4,000)
    assert 35 < int(leads["p50"]) < 55
    assert int(leads["p10"]) <= int(leads["p50"]) <= int(leads["p90"])
    cpl = body["figures"]["cpl"]
    assert D(cpl["p50"]) == (D(3000) / D(leads["p50"])).quantize(D("0.01"))
    assert body["actual"]["campaign_id"] == modelled and body["actual"]["spend"] == "0.00"

    # the plan report shows the same model next to the campaign's actual figures
    page = measurement.get(f"/api/v1/reports/plans/plan-{modelled}").text
    row = re.search(rf'<tr data-campaign="{modelled}">(.*?)</tr>', page, re.S)
    assert row is not None, page[-2000:]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))
    assert cells[:4] == [modelled, "channel + brand", leads["p50"], "0"], cells

    asked = measurement.post(
        "/api/v1/models/campaign",
        json={
            "channel": channel,
            "brand": "Acme",
            "budget": "3000.00",
            "start_date": "2015-06-01",
            "end_date": "2015-07-31",
        },
    )
    assert asked.status_code == 200, asked.text
    assert asked.json()["figures"] == body["figures"]
    assert asked.json()["actual"] is None

    for bad, field in (
        ({"end_date": "2015-05-01"}, "end_date"),
        ({"budget": "0"}, "budget"),
        ({"audience": "smb"}, "audience"),
        ({"segment": ""}, "segment"),
    ):
        refused = measurement.post(
            "/api/v1/models/campaign",
            json={
                "channel": channel,
                "budget": "3000.00",
                "start_date": "2015-06-01",
                "end_date": "2015-07-31",
                **bad,
            },
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"][0]["field"] == field, refused.text
    assert measurement.get("/api/v1/campaigns/nope/model").status_code == 404

    # a scenario: two candidates on the same curve, one capped at 1,000 of the 4,000
    scenario = {
        "total_budget": "4000.00",
        "start_date": "2015-06-01",
        "end_date": "2015-07-31",
        "candidates": [
            {"name": "capped", "channel": channel, "brand": "Acme", "max_amount": "1000.00"},
            {"name": "open", "channel": channel, "brand": "Acme"},
        ],
    }
    answer = measurement.post("/api/v1/models/plan-scenario", json=scenario)
    assert answer.status_code == 200, answer.text
    lines = {line["name"]: line for line in answer.json()["lines"]}
    assert (lines["capped"]["amount"], lines["open"]["amount"]) == ("1000.00", "3000.00")
    assert lines["capped"]["marginal_return"] > lines["open"]["marginal_return"] > 0
    totals = answer.json()["totals"]
    assert D(totals["gross_profit"]) == sum(D(line["gross_profit"]) for line in lines.values())
    assert D(totals["gross_profit"]) > 0
    short = {  # the minimums ask for 5,000 of 4,000
        **scenario,
        "candidates": [
            {"name": "open", "channel": channel, "min_amount": "3000.00"},
            {"name": "more", "channel": channel, "min_amount": "2000.00"},
        ],
    }
    refused = measurement.post("/api/v1/models/plan-scenario", json=short)
    assert refused.status_code == 422 and refused.json()["detail"][0]["field"] == "total_budget"


def test_peers_that_targeted_the_same_segment_weigh_more(
    measurement: httpx.Client, kafka_bootstrap: str
) -> None:
    """Two peers of the brand and two of another (fewer than three of the brand: the match
    widens to the channel, where another brand weighs 0.6 and the same segment adds 0.1)."""
    uid = uuid.uuid4().hex[:8]
    channel = f"segment-{uid}"
    modelled = f"aimed-{uid}"
    shape = {  # peer → brand, target segment, spend, leads
        f"p0-{uid}": ("Acme", "rfm:champions", 1000, 20),
        f"p1-{uid}": ("Acme", None, 2000, 35),
        f"p2-{uid}": ("Other", "rfm:champions", 4000, 90),  # above the others' curve
        f"p3-{uid}": ("Other", "lapsed", 8000, 80),
    }
    with EventPublisher(kafka_bootstrap, source="test") as events:
        for peer, (brand, segment, spend, leads) in shape.items():
            planned = campaign(peer, channel, start=dt.date(2015, 1, 5), budget="9000")
            events.publish(planned.model_copy(update={"brand": brand, "target_segment": segment}))
            spend_and_leads(events, peer, channel, spend=spend, leads=leads, at=BEFORE)
        aimed = campaign(modelled, channel, start=dt.date(2015, 6, 1), budget="3000")
        events.publish(aimed.model_copy(update={"target_segment": "rfm:champions"}))

    deadline, body = time.monotonic() + 60, {}
    while time.monotonic() < deadline:
        response = measurement.get(f"/api/v1/campaigns/{modelled}/model")
        body = response.json() if response.status_code == 200 else {}
        if sum(D(p["spend"]) for p in body.get("peers", [])) == D(15000):
            break
        time.sleep(0.3)
    # the campaign's own target segment is the model's
    assert body["match"] == "channel"
    assert {p["campaign_id"]: (p["similarity"], p["matches"]) for p in body["peers"]} == {
        f"p0-{uid}": ("1", ["channel", "brand", "segment"]),
        f"p1-{uid}": ("1", ["channel", "brand"]),
        f"p2-{uid}": ("0.7", ["channel", "segment"]),
        f"p3-{uid}": ("0.6", ["channel"]),
    }
    assert {p["campaign_id"]: p["segment"] for p in body["peers"]}[f"p3-{uid}"] == "lapsed"

    ask = {
        "channel": channel,
        "brand": "Acme",
        "budget": "3000.00",
        "start_date": "2015-06-01",
        "end_date": "2015-07-31",
    }
    plain = measurement.post("/api/v1/models/campaign", json=ask).json()
    assert {p["campaign_id"]: p["similarity"] for p in plain["peers"]}[f"p2-{uid}"] == "0.6"
    assert all("segment" not in p["matches"] for p in plain["peers"])
    aimed_answer = measurement.post(
        "/api/v1/models/campaign", json={**ask, "segment": "rfm:champions"}
    ).json()
    assert aimed_answer["peers"] == body["peers"] and aimed_answer["figures"] == body["figures"]
    # the peer above the curve weighs more with the segment: the expectation rises
    assert int(aimed_answer["figures"]["leads"]["p50"]) > int(plain["figures"]["leads"]["p50"])
    elsewhere = measurement.post(
        "/api/v1/models/campaign", json={**ask, "segment": "rfm:new"}
    ).json()
    assert elsewhere["notes"][-1] == "no peer targeted segment 'rfm:new'"


def test_an_approved_campaign_is_modelled_once_for_planning(
    measurement: httpx.Client, kafka_bootstrap: str, topic_reader, warehouse_client
) -> None:  # type: ignore[no-untyped-def]
    """An approved campaign that has not ended gets one ``campaign.modelled`` (planning keeps
    it), whose figures measurement also keeps in ``campaign_models`` (Grafana reads them); a
    campaign still in draft gets none."""
    uid = uuid.uuid4().hex[:8]
    approved, draft = f"approved-{uid}", f"draft-{uid}"
    with EventPublisher(kafka_bootstrap, source="test") as events:
        future = dt.date(2031, 1, 1)
        events.publish(campaign(approved, f"model-{uid}", start=future, budget="5000"))
        draft_event = campaign(draft, f"model-{uid}", start=future, budget="5000")
        events.publish(draft_event.model_copy(update={"status": "draft"}))

    def modelled(expect: int, timeout_s: float) -> list[dict]:  # type: ignore[type-arg]
        records = topic_reader(
            kafka_bootstrap,
            KPI,
            expect=expect,
            timeout_s=timeout_s,
            match=lambda r: (
                json.loads(r.value)["event_type"] == "campaign.modelled"
                and json.loads(r.value)["data"]["campaign_id"] in (approved, draft)
            ),
        )
        return [json.loads(record.value)["data"] for record in records]

    [event] = modelled(expect=1, timeout_s=30)
    assert (event["campaign_id"], event["currency"], event["budget"]) == (
        approved,
        "USD",
        "5000.00",
    )
    assert event["match"] in ("channel_brand", "channel", "all")
    assert event["peers"] >= 0 and isinstance(event["figures"], dict)
    assert len(modelled(expect=2, timeout_s=3)) == 1  # once, and never for the draft
    # the rows are written before the campaign is recorded as modelled, so they are there now
    stored = saved_models(warehouse_client, campaign_id=approved)
    assert sorted(stored) == sorted(event["figures"]) and stored, stored
    for name, band in event["figures"].items():
        for p in ("p10", "p50", "p90"):
            expected = None if band.get(p) is None else D(band[p])
            assert stored[name][p] == expected, (name, p)
    assert saved_models(warehouse_client, campaign_id=draft) == {}


def test_the_backtest_replays_the_campaigns_that_are_over(
    measurement: httpx.Client, kafka_bootstrap: str
) -> None:
    """Over campaigns are each modelled from those over before they started; with this
    module's 2015 peers in, the figures count at least them."""
    uid = uuid.uuid4().hex[:8]
    channel = f"backtest-{uid}"
    with EventPublisher(kafka_bootstrap, source="test") as events:
        for n, (spend, leads) in enumerate(PEERS):
            peer = f"bt{n}-{uid}"
            start = dt.date(2014, 1, 1) + dt.timedelta(days=40 * n)
            planned = campaign(peer, channel, start=start, budget="9000")
            events.publish(planned.model_copy(update={"end_date": start + dt.timedelta(days=30)}))
            at = dt.datetime.combine(start, dt.time(12), tzinfo=dt.UTC)
            spend_and_leads(events, peer, channel, spend=spend, leads=leads, at=at)
    deadline, body = time.monotonic() + 60, {}
    while time.monotonic() < deadline:
        leads = measurement.get(f"/api/v1/kpis/campaigns/bt3-{uid}").json().get("leads")
        if leads == 80:
            body = measurement.get("/api/v1/models/backtest").json()
            break
        time.sleep(0.3)
    assert body["campaigns"] >= 4 and body["modelled"] >= 3  # bt0 has nothing before it
    accuracy = body["figures"]["leads"]
    assert accuracy["n"] >= 3 and D(accuracy["mape"]) >= 0
    assert D(0) <= D(accuracy["within_p10_p90"]) <= D(1)
    assert measurement.get("/api/v1/models/backtest", params={"min_peers": 0}).status_code == 422
