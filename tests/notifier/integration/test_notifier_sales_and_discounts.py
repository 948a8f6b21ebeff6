"""Sales-target and discount causes end to end: real broker, store and SMTP server.

A cause that arrives before its owner's planning event waits for it; a redelivered cause sends
no second e-mail; a promo-fund alert names its budget line once the line is known."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from notifier_testkit import SmtpServer
from test_notifier_service import ADMIN, TERMINAL, wait_for

from services.notifier.app import create_app
from services.notifier.settings import NotifierSettings
from shared import topics
from shared.events import new_envelope
from shared.events.discounts import DiscountLimitExceeded, DiscountThresholdCrossed
from shared.events.kpi import SalesTargetAtRisk
from shared.events.planning import (
    BudgetLineSet,
    CampaignPlanned,
    PlanApproved,
    PlanCreated,
    SalesUnitSet,
)
from shared.publisher import EventPublisher

pytestmark = pytest.mark.integration


def notifier_settings(
    kafka_bootstrap: str, database_url: str, unique_id: str, smtp_server: SmtpServer
) -> NotifierSettings:
    return NotifierSettings(
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url,
        consumer_group=f"mrm-notifier-{unique_id}",
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_from="mrm@example.com",
        poll_interval_s=0.1,
        tokens={"admin-token": {"subject": "root", "role": "admin"}},
    )


def settled(client: TestClient, event_id: object) -> list[dict] | None:
    """The cause's notifications once all are delivered or given up, else None."""
    items = client.get(
        "/api/v1/notifications", headers=ADMIN, params={"cause_event_id": str(event_id)}
    ).json()["items"]
    return items if items and all(i["status"] in TERMINAL for i in items) else None


def test_at_risk_and_discount_exception_reach_their_owners_once(
    kafka_bootstrap: str, database_url: str, unique_id: str, smtp_server: SmtpServer
) -> None:
    nina, ann = f"nina-{unique_id}", f"ann-{unique_id}"
    unit_id, plan_id, campaign_id = (f"{kind}-{unique_id}" for kind in ("u", "p", "c"))
    settings = notifier_settings(kafka_bootstrap, database_url, unique_id, smtp_server)
    at_risk = new_envelope(
        SalesTargetAtRisk(
            target_id=f"t-{unique_id}",
            unit_id=unit_id,
            period="2027-Q1",
            period_start=dt.date(2027, 1, 1),
            period_end=dt.date(2027, 3, 31),
            target=Decimal("100000"),
            currency="EUR",
            sales=Decimal("36000"),
            forecast=Decimal("72000"),
            forecast_share=Decimal("0.72"),
            threshold=Decimal("0.9"),
            as_of=dt.datetime(2027, 2, 14, 9, 0, tzinfo=dt.UTC),
        ),
        source="measurement",
    )
    exceeded = new_envelope(
        DiscountLimitExceeded(
            order_id=f"o-{unique_id}",
            campaign_id=campaign_id,
            plan_id=plan_id,
            scope_kind="campaign",
            scope_id=campaign_id,
            rate=Decimal("0.3"),
            max_discount_rate=Decimal("0.2"),
            discount_amount=Decimal("300"),
            amount_over=Decimal("100"),
            currency="EUR",
        ),
        source="measurement",
    )

    with TestClient(create_app(settings)) as client:
        for recipient in (nina, ann):
            response = client.put(
                f"/api/v1/recipients/{recipient}",
                headers=ADMIN,
                json={"email": f"{recipient}@example.com", "channels": ["email"]},
            )
            assert response.status_code == 201, response.text

        with EventPublisher(kafka_bootstrap, source="test") as publisher:
            # the discount exception comes before its campaign is known: it waits
            publisher.send_envelope(exceeded, topic=topics.KPI, key=campaign_id)
            publisher.publish(
                SalesUnitSet(unit_id=unit_id, kind="region", name="North", owner=nina)
            )
            publisher.flush()
            for _ in range(2):  # delivered twice
                publisher.send_envelope(at_risk, topic=topics.KPI, key=unit_id)
            publisher.send_envelope(exceeded, topic=topics.KPI, key=campaign_id)
            publisher.publish(
                PlanCreated(
                    plan_id=plan_id,
                    name="Plan 2027",
                    period_start=dt.date(2027, 1, 1),
                    period_end=dt.date(2027, 12, 31),
                    currency="EUR",
                    owner=f"carl-{unique_id}",
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

        (risk_item,) = wait_for(lambda: settled(client, at_risk.event_id), what="at-risk delivered")
        (over_item,) = wait_for(
            lambda: settled(client, exceeded.event_id), what="exception delivered"
        )
        time.sleep(1.0)  # a duplicate, had it been recorded, would now be visible

    assert (risk_item["recipient"], risk_item["status"]) == (nina, "delivered")
    assert (over_item["recipient"], over_item["status"]) == (ann, "delivered")
    mails = [m for m in smtp_server.messages if m.rcpt_tos[0].endswith(f"{unique_id}@example.com")]
    assert sorted(m.rcpt_tos[0] for m in mails) == [f"{ann}@example.com", f"{nina}@example.com"]
    by_rcpt = {m.rcpt_tos[0]: m.message for m in mails}
    assert by_rcpt[f"{nina}@example.com"]["Subject"] == (
        'Sales target at risk: region "North", 2027-Q1'
    )
    assert "72,000.00 EUR" in by_rcpt[f"{nina}@example.com"].get_content()
    ann_mail = by_rcpt[f"{ann}@example.com"]
    assert ann_mail["Subject"].startswith(f"Discount over limit: order o-{unique_id}")
    assert '"Spring Sale"' in ann_mail["Subject"]
    assert "Discount beyond the maximum: 100.00 EUR." in ann_mail.get_content()


def test_promo_fund_alert_on_a_line_names_the_line_once_it_is_known(
    kafka_bootstrap: str, database_url: str, unique_id: str, smtp_server: SmtpServer
) -> None:
    carl = f"carl-{unique_id}"
    plan_id, line_id = f"p-{unique_id}", f"l-{unique_id}"
    settings = notifier_settings(kafka_bootstrap, database_url, unique_id, smtp_server)

    def alert(threshold: int, used: str) -> DiscountThresholdCrossed:
        return DiscountThresholdCrossed(
            scope_kind="line",
            scope_id=line_id,
            plan_id=plan_id,
            threshold=threshold,  # type: ignore[arg-type]
            used=Decimal(used),
            promo_fund=Decimal("5000"),
            currency="EUR",
        )

    early = new_envelope(alert(80, "4100"), source="measurement")
    late = new_envelope(alert(100, "5150"), source="measurement")
    approved = new_envelope(PlanApproved(plan_id=plan_id, approved_by="cmo"), source="planning")

    with TestClient(create_app(settings)) as client:
        response = client.put(
            f"/api/v1/recipients/{carl}",
            headers=ADMIN,
            json={"email": f"{carl}@example.com", "channels": ["email"]},
        )
        assert response.status_code == 201, response.text

        with EventPublisher(kafka_bootstrap, source="test") as publisher:
            publisher.publish(
                PlanCreated(
                    plan_id=plan_id,
                    name="Plan 2027",
                    period_start=dt.date(2027, 1, 1),
                    period_end=dt.date(2027, 12, 31),
                    currency="EUR",
                    owner=carl,
                )
            )
            # the line is not known yet: the alert is told at once, naming the line by its id
            publisher.send_envelope(early, topic=topics.KPI, key=plan_id)
            publisher.flush()
            wait_for(lambda: settled(client, early.event_id), what="first alert delivered")

            publisher.publish(
                BudgetLineSet(
                    line_id=line_id,
                    plan_id=plan_id,
                    name="Acme Pro at PartnerNet",
                    amount=Decimal("20000"),
                    currency="EUR",
                )
            )
            # published after the line on the plan's partition: once the approval is told, the
            # line has been consumed
            publisher.send_envelope(approved, topic=topics.PLANNING, key=plan_id)
            publisher.flush()
            wait_for(lambda: settled(client, approved.event_id), what="approval delivered")

            publisher.send_envelope(late, topic=topics.KPI, key=plan_id)
            publisher.flush()
            (item,) = wait_for(lambda: settled(client, late.event_id), what="second alert")

    assert (item["recipient"], item["status"]) == (carl, "delivered")
    alerts = {
        m.message["Subject"]: m.message.get_content()
        for m in smtp_server.messages
        if m.rcpt_tos == [f"{carl}@example.com"] and m.message["Subject"].startswith("Promo")
    }
    by_id = f'the budget line {line_id} of "Plan 2027"'
    by_name = 'the budget line "Acme Pro at PartnerNet" of "Plan 2027"'
    assert sorted(alerts) == [
        f"Promo fund alert: {by_name} has used 100 % of its promo fund",
        f"Promo fund alert: {by_id} has used 80 % of its promo fund",
    ]
    named = alerts[f"Promo fund alert: {by_name} has used 100 % of its promo fund"]
    assert f"Discounts given under {by_name} total 5,150.00 EUR" in named
