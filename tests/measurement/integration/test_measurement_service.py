"""The measurement service on a real broker and chDB: ingestion, KPIs over HTTP, alerts, DLQ."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import httpx
import pytest
from scenario_kit import wait_for

from shared.events.ingest import AdMetricsReported, LeadStageChanged, SaleCompleted, SpendRecorded
from shared.events.planning import (
    CampaignPlanned,
    KpiTargetSet,
    ReallocationRuleRemoved,
    ReallocationRuleSet,
)
from shared.kafka import ERROR_HEADER
from shared.publisher import EventPublisher
from shared.topics import KPI, SPEND, dlq

pytestmark = pytest.mark.integration
TOKEN = "t-viewer"


@pytest.fixture
def measurement(measurement_api) -> httpx.Client:  # type: ignore[no-untyped-def]
    return measurement_api(
        bearer=TOKEN,
        timeout=10,
        evaluate_interval_s=0.2,
        reallocation_interval_s=0.2,
        fx_rates={"EUR": Decimal("1.10")},
        own_monitor_group=True,
    )


def publish_search_campaign(
    events: EventPublisher,
    campaign_id: str,
    *,
    plan_id: str,
    leads: int,
    at: dt.datetime,
    line_id: str | None = None,
) -> None:
    """An active March 2027 search campaign of budget 10,000 USD that spent 2,000 at ``at``
    for ``leads`` leads (CPL 2,000 / leads)."""
    events.publish(
        CampaignPlanned(
            campaign_id=campaign_id,
            plan_id=plan_id,
            name=campaign_id,
            channel="search",
            owner="ann",
            budget=Decimal("10000"),
            currency="USD",
            start_date=dt.date(2027, 3, 1),
            end_date=dt.date(2027, 3, 31),
            status="active",
            line_id=line_id,
        )
    )
    events.publish(
        SpendRecorded(
            campaign_id=campaign_id, channel="search", amount=Decimal("2000"), currency="USD"
        ),
        occurred_at=at,
    )
    for index in range(leads):
        events.publish(
            LeadStageChanged(
                lead_id=f"{campaign_id}-l{index}",
                campaign_id=campaign_id,
                channel="search",
                stage="lead",
            ),
            occurred_at=at,
        )


def test_events_become_kpis_and_alerts(
    measurement: httpx.Client, kafka_bootstrap: str, topic_reader
) -> None:  # type: ignore[no-untyped-def]
    plan_id, campaign_id = f"p-{uuid.uuid4()}", f"c-{uuid.uuid4()}"
    at = dt.datetime(2027, 3, 10, 12, tzinfo=dt.UTC)
    with EventPublisher(kafka_bootstrap, source="test") as events:
        events.publish(
            CampaignPlanned(
                campaign_id=campaign_id,
                plan_id=plan_id,
                name="Spring",
                channel="search",
                owner="ann",
                budget=Decimal("1000"),
                currency="USD",
                start_date=dt.date(2027, 3, 1),
                end_date=dt.date(2027, 3, 31),
                gross_margin=Decimal("0.5"),
            )
        )
        events.publish(
            KpiTargetSet(
                target_id=f"t-{campaign_id}",
                campaign_id=campaign_id,
                kpi="cpl",
                target=Decimal("50"),
                direction="lower_is_better",
            )
        )
        spend = events.publish(
            SpendRecorded(
                campaign_id=campaign_id, channel="search", amount=Decimal("300.00"), currency="USD"
            ),
            occurred_at=at,
        )
        events.send_envelope(spend, topic=SPEND, key=campaign_id)  # re-delivered: counts once
        events.publish(
            SpendRecorded(
                campaign_id=campaign_id, channel="search", amount=Decimal("100.00"), currency="EUR"
            ),
            occurred_at=at,
        )
        events.publish(
            SpendRecorded(
                campaign_id=campaign_id, channel="search", amount=Decimal("5.00"), currency="JPY"
            ),
            occurred_at=at,
        )
        events.publish(
            AdMetricsReported(
                campaign_id=campaign_id, channel="search", impressions=10_000, clicks=200
            ),
            occurred_at=at,
        )
        for index, stage in enumerate(("lead", "mql", "lead", "visitor")):
            events.publish(
                LeadStageChanged(
                    lead_id=f"{campaign_id}-l{index}",
                    campaign_id=campaign_id,
                    channel="search",
                    stage=stage,
                ),
                occurred_at=at,
            )
        events.publish(
            LeadStageChanged(
                lead_id=f"{campaign_id}-l0",
                campaign_id=campaign_id,
                channel="search",
                stage="customer",
                customer_id=f"{campaign_id}-k0",
            ),
            occurred_at=at,
        )
        events.publish(
            SaleCompleted(
                order_id="o1",
                customer_id=f"{campaign_id}-k0",
                campaign_id=campaign_id,
                amount=Decimal("1200.00"),
                currency="USD",
            ),
            occurred_at=at,
        )
        events.send_raw(SPEND, b'{"event_id": "not-a-uuid"}', key=campaign_id)

    kpis = wait_for(
        measurement,
        f"/api/v1/kpis/campaigns/{campaign_id}",
        lambda body: body["revenue"] == "1200.00" and body["spend"] == "410.00",
    )
    # spend 300 + 100 EUR × 1.10 = 410; 3 leads (lead, mql, lead→customer); visitor is not one
    assert kpis["impressions"] == 10_000 and kpis["clicks"] == 200
    assert Decimal(kpis["ctr"]) == Decimal("0.02")
    assert Decimal(kpis["cpc"]) == Decimal("2.05")
    assert kpis["leads"] == 3
    assert Decimal(kpis["cpl"]) == Decimal("136.67")
    assert kpis["new_customers"] == 1 and Decimal(kpis["cac"]) == Decimal("410.00")
    # ROMI = (1200 × 0.5 − 410) / 410
    assert Decimal(kpis["romi"]) == (Decimal("190") / Decimal("410")).quantize(Decimal("1e-6"))

    breached = topic_reader(
        kafka_bootstrap,
        KPI,
        expect=1,
        match=lambda r: (
            json.loads(r.value)["event_type"] == "kpi.target_breached"
            and json.loads(r.value)["data"]["campaign_id"] == campaign_id
        ),
    )
    assert json.loads(breached[0].value)["data"]["kpi"] == "cpl"

    rejected = topic_reader(
        kafka_bootstrap, dlq(SPEND), expect=2, match=lambda r: r.key == campaign_id.encode()
    )
    reasons = sorted(dict(r.headers)[ERROR_HEADER].decode() for r in rejected)
    assert reasons[0].startswith("data.currency: cannot convert JPY to USD")
    assert reasons[1].startswith("event_id:")


def test_unknown_campaign_and_bad_period_are_4xx(measurement: httpx.Client) -> None:
    assert measurement.get("/api/v1/kpis/campaigns/nope").status_code == 404
    bad = measurement.get("/api/v1/kpis/campaigns/x", params={"from": "2027-01-01T00:00:00"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "from"]
    reversed_period = measurement.get(
        "/api/v1/funnel",
        params={"from": "2027-02-01T00:00:00Z", "to": "2027-01-01T00:00:00Z"},
    )
    assert reversed_period.status_code == 422
    assert reversed_period.json()["detail"][0]["loc"] == ["query", "to"]
    assert measurement.get("/api/v1/funnel", headers={"Authorization": ""}).status_code == 401


def test_an_under_performer_is_proposed_to_give_budget_to_an_over_performer(
    measurement: httpx.Client, kafka_bootstrap: str, topic_reader
) -> None:  # type: ignore[no-untyped-def]
    plan_id = f"p-{uuid.uuid4()}"
    under, over = f"c-under-{uuid.uuid4()}", f"c-over-{uuid.uuid4()}"
    at = dt.datetime(2027, 3, 10, 12, tzinfo=dt.UTC)
    with EventPublisher(kafka_bootstrap, source="test") as events:
        for campaign_id, leads in ((under, 20), (over, 80)):
            events.publish(
                KpiTargetSet(
                    target_id=f"t-{campaign_id}",
                    campaign_id=campaign_id,
                    kpi="cpl",
                    target=Decimal("50"),
                    direction="lower_is_better",
                )
            )
            publish_search_campaign(events, campaign_id, plan_id=plan_id, leads=leads, at=at)

    # CPL 2,000 / 20 = 100 against 50 → CKPI 50; CPL 2,000 / 80 = 25 → CKPI 150 (capped)
    plan = wait_for(
        measurement,
        f"/api/v1/kpis/plans/{plan_id}",
        lambda body: body["leads"] == 100 and body["spend"] == "4000.00",
    )
    assert {row["campaign_id"]: row["ckpi"] for row in plan["campaigns"]} == {
        under: "50.00",
        over: "150.00",
    }

    def proposals(expect: int, timeout_s: float) -> list[dict]:
        records = topic_reader(
            kafka_bootstrap,
            KPI,
            expect=expect,
            timeout_s=timeout_s,
            match=lambda r: (
                json.loads(r.value)["event_type"] == "budget.reallocation_proposed"
                and json.loads(r.value)["data"]["plan_id"] == plan_id
            ),
        )
        return [json.loads(record.value)["data"] for record in records]

    [proposal] = proposals(expect=1, timeout_s=20)
    assert proposal["from_campaign_id"] == under and proposal["to_campaign_id"] == over
    assert Decimal(proposal["amount"]) == Decimal("1600.00")  # 20 % of 10,000 − 2,000
    assert f'"{under}" has CKPI 50 (< 80)' in proposal["reason"]

    # more data for both, the standing still the same: many rounds later, still one proposal
    with EventPublisher(kafka_bootstrap, source="test") as events:
        for campaign_id in (under, over):
            events.publish(
                SpendRecorded(
                    campaign_id=campaign_id, channel="search", amount=Decimal("10"), currency="USD"
                ),
                occurred_at=at,
            )
    wait_for(
        measurement,
        f"/api/v1/kpis/plans/{plan_id}",
        lambda body: body["spend"] == "4020.00",
    )
    assert len(proposals(expect=2, timeout_s=3)) == 1


def test_a_plan_rule_fires_after_its_hold_time_for_the_best_of_the_line(
    measurement: httpx.Client, kafka_bootstrap: str, topic_reader
) -> None:  # type: ignore[no-untyped-def]
    """A plan with its own rules: the settings' rule no longer applies (its default rule was
    removed), a CPL rule with a hold time fires once, after the hold, with no new data, for
    the cheapest campaign of the donor's line."""
    plan_id = f"p-{uuid.uuid4()}"
    dear, cheap, elsewhere = (f"c-{name}-{uuid.uuid4()}" for name in ("dear", "cheap", "else"))
    at = dt.datetime(2027, 3, 10, 12, tzinfo=dt.UTC)
    rule = ReallocationRuleSet(
        rule_id=f"r-{uuid.uuid4()}",
        plan_id=plan_id,
        kpi="cpl",
        comparison="gt",
        threshold=Decimal("60"),
        hold_s=4,
        action="best_in_line",
        recipient_threshold=Decimal("40"),
        share=Decimal("0.5"),
        mode="apply",
    )
    with EventPublisher(kafka_bootstrap, source="test") as events:
        events.publish(ReallocationRuleRemoved(rule_id=f"r-default-{plan_id}", plan_id=plan_id))
        events.publish(rule)
        # CPL 2,000 / 20 = 100 (dear), 2,000 / 80 = 25 (cheap, same line), 2,000 / 200 = 10
        # (cheaper still, but on another line)
        for campaign_id, line_id, leads in (
            (dear, "line-a", 20),
            (cheap, "line-a", 80),
            (elsewhere, "line-b", 200),
        ):
            publish_search_campaign(
                events, campaign_id, plan_id=plan_id, leads=leads, at=at, line_id=line_id
            )
    wait_for(measurement, f"/api/v1/kpis/plans/{plan_id}", lambda body: body["leads"] == 300)

    def proposals(expect: int, timeout_s: float) -> list[dict]:
        records = topic_reader(
            kafka_bootstrap,
            KPI,
            expect=expect,
            timeout_s=timeout_s,
            match=lambda r: (
                json.loads(r.value)["event_type"] == "budget.reallocation_proposed"
                and json.loads(r.value)["data"]["plan_id"] == plan_id
            ),
        )
        return [json.loads(record.value)["data"] for record in records]

    # the condition holds since the first data (moments ago): nothing before the hold is over
    assert proposals(expect=1, timeout_s=1) == []
    [proposal] = proposals(expect=1, timeout_s=20)
    assert (proposal["from_campaign_id"], proposal["to_campaign_id"]) == (dear, cheap)
    assert (proposal["rule_id"], proposal["mode"], proposal["amount"]) == (
        rule.rule_id,
        "apply",
        "4000.00",  # 50 % of 10,000 − 2,000
    )
    assert len(proposals(expect=2, timeout_s=3)) == 1  # once per episode
    # a new rule of the plan is evaluated at once, with no new data
    second = rule.model_copy(
        update={"rule_id": f"r-{uuid.uuid4()}", "hold_s": 0, "mode": "propose"}
    )
    with EventPublisher(kafka_bootstrap, source="test") as events:
        events.publish(second)
    both = proposals(expect=2, timeout_s=20)
    assert [(p["rule_id"], p["amount"]) for p in both] == [
        (rule.rule_id, "4000.00"),
        (
            second.rule_id,
            "4000.00",
        ),  # half of what is unspent: measurement's budgets are planning's
    ]
