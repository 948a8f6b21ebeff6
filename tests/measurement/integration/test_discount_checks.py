"""Discount checks on chDB: a plan with a line tree and limits at each level, sales of its
campaigns; promo-fund thresholds announced once per crossing with ids from their cause, each
sale over its applicable maximum rate announced once, the exceptions list and the analytics.

Every id carries a fresh ``unique_id`` (the chDB engine is shared by the session).
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal as D
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from services.measurement import discount_api, warehouse
from services.measurement.monitor import TargetMonitor
from services.measurement.warehouse import StoredEvent, Warehouse
from shared.events import EventData, new_envelope
from shared.events.ingest import SaleCompleted
from shared.events.planning import BudgetLineSet, CampaignPlanned, DiscountLimitSet, PlanCreated
from shared.metrics import ServiceMetrics

pytestmark = pytest.mark.integration


class _Leading:
    def turn(self) -> Any:  # pragma: no cover - check_discounts needs no turn
        raise AssertionError


def _store(client: Client, uid: str, *events: EventData) -> None:
    stored = [
        StoredEvent(
            envelope=new_envelope(
                data,
                source="test",
                event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{uid}/{n}/{data.event_type}"),
                occurred_at=dt.datetime(2027, 3, 10, 12, tzinfo=dt.UTC),
            ),
            data=data,
            topic=data.topic,
            partition=0,
            offset=n,
        )
        for n, data in enumerate(events)
    ]
    warehouse.insert_events(client, events=stored)


def _campaign(uid: str, name: str, plan: str, line: str | None) -> CampaignPlanned:
    return CampaignPlanned(
        campaign_id=f"{name}-{uid}",
        plan_id=plan,
        name=name,
        channel="retail",
        owner="ann",
        budget=D("1000"),
        currency="EUR",
        start_date=dt.date(2027, 3, 1),
        end_date=dt.date(2027, 3, 31),
        line_id=line,
    )


def _sale(uid: str, order: str, campaign: str, amount: str, discount: str) -> SaleCompleted:
    return SaleCompleted(
        order_id=f"{order}-{uid}",
        customer_id=f"k-{uid}",
        campaign_id=campaign,
        amount=D(amount),
        discount_amount=D(discount),
        currency="EUR",
        discount_reason="spring" if order != "o3" else "clearance",
        partner_id="retailco",
    )


async def test_funds_thresholds_and_sales_over_the_rate(
    warehouse_client: Client, unique_id: str
) -> None:
    uid = unique_id
    plan, brand, partner = f"p-{uid}", f"brand-{uid}", f"partner-{uid}"
    a, b = f"a-{uid}", f"b-{uid}"

    def limit(
        kind: str, scope: str, fund: str | None, rate: str | None, v: int = 1
    ) -> DiscountLimitSet:
        return DiscountLimitSet(
            scope_kind=kind,
            scope_id=scope,
            plan_id=plan,
            currency="EUR",
            version=v,  # type: ignore[arg-type]
            promo_fund=None if fund is None else D(fund),
            max_discount_rate=None if rate is None else D(rate),
        )

    _store(
        warehouse_client,
        uid,
        PlanCreated(
            plan_id=plan,
            name="P",
            period_start=dt.date(2027, 1, 1),
            period_end=dt.date(2027, 12, 31),
            currency="EUR",
            owner="carla",
        ),
        BudgetLineSet(line_id=brand, plan_id=plan, name="Brand", amount=D("5000"), currency="EUR"),
        BudgetLineSet(
            line_id=partner,
            plan_id=plan,
            parent_id=brand,
            name="RetailCo",
            amount=D("2000"),
            currency="EUR",
        ),
        _campaign(uid, "a", plan, partner),
        _campaign(uid, "b", plan, None),
        limit("plan", plan, None, "0.30"),
        limit("line", brand, "500.00", "0.20"),
        limit("campaign", b, "100.00", None),
        # 100 off 1000 = 0.10; 300 off 1000 = 0.30 > 0.20 of the brand line: 100.00 over
        _sale(uid, "o1", a, "900.00", "100.00"),
        _sale(uid, "o2", a, "700.00", "300.00"),
        # b draws from the plan: 0.30 applies; 35 off 100 = 0.35: 5.00 over
        _sale(uid, "o3", b, "65.00", "35.00"),
        _sale(uid, "o4", b, "55.00", "45.00"),  # 0.45: 15.00 over; b's fund 80/100 used
    )
    published: list[tuple[Any, uuid.UUID]] = []
    monitor = TargetMonitor(
        warehouse=Warehouse(warehouse_client),
        broker=None,  # type: ignore[arg-type]
        metrics=ServiceMetrics("test_discounts"),
        leadership=_Leading(),  # type: ignore[arg-type]
    )

    async def publish(data: Any, *, event_id: uuid.UUID) -> None:
        published.append((data, event_id))

    monitor._publish = publish  # type: ignore[method-assign]
    events = await monitor.check_discounts(plan)
    crossed = sorted(
        (e.scope_kind, e.threshold, e.used)
        for e in events
        if e.event_type == "discount.threshold_crossed"
    )
    # brand line: 400 of 500 = 80 %; campaign b: 80 of 100 = 80 %
    assert crossed == [("campaign", 80, D("80.00")), ("line", 80, D("400.00"))]
    over = {
        e.order_id: (e.scope_kind, e.rate, e.amount_over)
        for e in events
        if e.event_type == "discount.limit_exceeded"
    }
    assert over == {
        f"o2-{uid}": ("line", D("0.3"), D("100.00")),
        f"o3-{uid}": ("plan", D("0.35"), D("5.00")),
        f"o4-{uid}": ("plan", D("0.45"), D("15.00")),
    }
    assert await monitor.check_discounts(plan) == []  # announced once

    # another sale of b: 100 of 100 used → 100 % for b; brand stays at 80 %
    _store(warehouse_client, f"{uid}-2", _sale(uid, "o5", b, "180.00", "20.00"))
    again = await monitor.check_discounts(plan)
    assert [(e.event_type, getattr(e, "threshold", None)) for e in again] == [
        ("discount.threshold_crossed", 100)
    ]
    # the same state seen by a second replica derives the same ids
    ids = [event_id for _, event_id in published]
    assert len(ids) == len(set(ids)) == 6

    db = Warehouse(warehouse_client)
    listed = await discount_api.list_exceptions(db=db, _=None, line_id=brand)  # type: ignore[arg-type]
    assert [(x.order_id, x.amount_over) for x in listed] == [(f"o2-{uid}", D("100.00"))]
    of_b = await discount_api.list_exceptions(db=db, _=None, campaign_id=b)  # type: ignore[arg-type]
    assert [x.order_id for x in of_b] == [f"o3-{uid}", f"o4-{uid}"]
    stats = await discount_api.discount_analytics(plan_id=plan, db=db, _=None)  # type: ignore[arg-type]
    assert stats.total == D("500.00")  # 100 + 300 + 35 + 45 + 20
    assert stats.over_limit == D("120.00")
    assert stats.over_limit_share == D("0.2400")
    assert stats.by_reason == {"spring": D("465.00"), "clearance": D("35.00")}
    assert stats.by_campaign == {a: D("400.00"), b: D("100.00")}
