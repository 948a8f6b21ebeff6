"""Sales-target and discount causes end to end: real broker, store and SMTP server.

A cause that arrives before its owner's planning event waits for it; a redelivered cause sends
no second e-mail."""

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
from shared.events.discounts import DiscountLimitExceeded
from shared.events.kpi import SalesTargetAtRisk
from shared.events.planning import CampaignPlanned, PlanCreated, SalesUnitSet
from shared.publisher import EventPublisher

pytestmark = pytest.mark.integration


def test_at_risk_and_discount_exception_reach_their_owners_once(
    kafka_bootstrap: str, database_url: str, unique_id: str, smtp_server: SmtpServer
) -> None:
    nina, ann = f"nina-{unique_id}", f"ann-{unique_id}"
    unit_id, plan_id, campaign_id = (f"{kind}-{unique_id}" for kind in ("u", "p", "c"))
    settings = NotifierSettings(
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url,
        consumer_group=f"mrm-notifier-{unique_id}",
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_from="mrm@example.com",
        poll_interval_s=0.1,
        tokens={"admin-token": {"subject": "root", "role": "admin"}},
    )
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

        def settled(event_id: object) -> list[dict] | None:
            items = client.get(
                "/api/v1/notifications", headers=ADMIN, params={"cause_event_id": str(event_id)}
            ).json()["items"]
            return items if items and all(i["status"] in TERMINAL for i in items) else None

        (risk_item,) = wait_for(lambda: settled(at_risk.event_id), what="at-risk delivered")
        (over_item,) = wait_for(lambda: settled(exceeded.event_id), what="exception delivered")
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
