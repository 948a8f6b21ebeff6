"""Sales-target progress on chDB: the service's progress tree from published units, targets and
sales (figures by hand), and the at-risk watch announcing an episode once with one event id.

Periods of 2019 that no other test writes, so the company unit's "all sales" are this module's;
unit codes carry a fresh ``uid``.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from decimal import Decimal as D
from typing import Any

import httpx
import pytest
from clickhouse_connect.driver.client import Client
from scenario_kit import tree_nodes

from services.measurement import progress
from services.measurement.sales_watch import SalesTargetWatch
from services.measurement.warehouse import StoredEvent, Warehouse, insert_events
from shared.events import EventData, new_envelope
from shared.events.ingest import SaleCompleted
from shared.events.planning import SalesTargetSet, SalesUnitSet
from shared.metrics import ServiceMetrics
from shared.money import FxRates
from shared.publisher import EventPublisher

pytestmark = pytest.mark.integration

TOKEN = "t-progress-viewer"


def _tree(uid: str) -> list[SalesUnitSet]:
    """Company → region EMEA (rep A, partner P), division North (rep B)."""
    units = [
        ("co", "company", None, None),
        ("emea", "region", "co", "EMEA"),
        ("north", "division", "co", "NORTH"),
        ("a", "rep", "emea", "rep-a"),
        ("p", "partner", "emea", "p-1"),
        ("b", "rep", "north", "rep-b"),
    ]
    return [
        SalesUnitSet(
            unit_id=f"{key}-{uid}",
            parent_id=f"{parent}-{uid}" if parent else None,
            kind=kind,  # type: ignore[arg-type]
            name=f"{key} {uid}",
            owner=f"owner-{key}",
            code=f"{code}-{uid}" if code else None,
        )
        for key, kind, parent, code in units
    ]


def _target(uid: str, key: str, amount: str, *, month: int, version: int = 1) -> SalesTargetSet:
    start = dt.date(2019, month, 1)
    end = dt.date(2019, month, 31 if month in (7, 8) else 30)
    return SalesTargetSet(
        target_id=f"t-{key}-{uid}",
        unit_id=f"{key}-{uid}",
        period=f"2019-{month:02d}",
        period_start=start,
        period_end=end,
        amount=D(amount),
        currency="EUR",
        set_by="cmo",
        version=version,
    )


def _sale(uid: str, n: int, amount: str, **units: str) -> SaleCompleted:
    return SaleCompleted(
        order_id=f"o{n}-{uid}",
        customer_id=f"k{n}-{uid}",
        campaign_id=None,
        amount=D(amount),
        currency=units.pop("currency", "EUR"),
        **{field: f"{code}-{uid}" for field, code in units.items()},
    )


def _sales(uid: str) -> list[SaleCompleted]:
    """July 2019: rep A with partner P in EMEA 100 (once for EMEA), rep B 50, partner P 30,
    no unit 20, rep A in the North 10, and rep B 40 USD (20 EUR at the service's rate)."""
    return [
        _sale(uid, 1, "100", rep_id="rep-a", partner_id="p-1", region="EMEA"),
        _sale(uid, 2, "50", rep_id="rep-b"),
        _sale(uid, 3, "30", partner_id="p-1"),
        _sale(uid, 4, "20"),
        _sale(uid, 5, "10", rep_id="rep-a", region="NORTH"),
        _sale(uid, 6, "40", rep_id="rep-b", currency="USD"),
    ]


@pytest.fixture
def measurement(measurement_api) -> httpx.Client:  # type: ignore[no-untyped-def]
    """The measurement service on the session's broker and chDB engine, with a viewer token."""
    return measurement_api(bearer=TOKEN, currency="EUR", fx_rates={"USD": D("0.5")})


def test_progress_tree_of_a_past_month(measurement: httpx.Client, kafka_bootstrap: str) -> None:
    uid = uuid.uuid4().hex[:10]
    with EventPublisher(kafka_bootstrap, source="test") as events:
        for unit in _tree(uid):
            events.publish(unit)
        events.publish(_target(uid, "co", "1000", month=7))
        events.publish(_target(uid, "emea", "100", month=7))  # replaced by version 2
        events.publish(_target(uid, "emea", "280", month=7, version=2))
        events.publish(_target(uid, "b", "0", month=7))
        for n, sale in enumerate(_sales(uid)):
            events.publish(sale, occurred_at=dt.datetime(2019, 7, 3 + n, 9, tzinfo=dt.UTC))
    deadline, nodes = time.monotonic() + 60, {}
    while time.monotonic() < deadline:
        response = measurement.get("/api/v1/sales-targets/progress", params={"period": "2019-07"})
        assert response.status_code == 200, response.text
        nodes = tree_nodes(response.json()["units"])
        company, emea = nodes.get(f"co-{uid}", {}), nodes.get(f"emea-{uid}", {})
        if (
            company.get("unconverted")
            and company["sales"] == "210.00"
            and emea["target"] == "280.00"
        ):
            break
        time.sleep(0.25)
    # the period is over: the forecast is the sales
    figures = {
        key: tuple(
            nodes[f"{key}-{uid}"][name]
            for name in ("target", "sales", "share", "forecast", "forecast_share", "at_risk")
        )
        for key in ("co", "emea", "north", "a", "p", "b")
    }
    assert figures == {
        "co": ("1000.00", "230.00", "0.230000", "230.00", "0.230000", True),
        "emea": ("280.00", "140.00", "0.500000", "140.00", "0.500000", True),
        "north": (None, "80.00", None, "80.00", None, False),
        "a": (None, "110.00", None, "110.00", None, False),
        "p": (None, "130.00", None, "130.00", None, False),
        "b": ("0.00", "70.00", None, "70.00", None, False),
    }
    assert all(node["currency"] == "EUR" and node["unconverted"] == {} for node in nodes.values())
    assert [c["unit_id"] for c in nodes[f"co-{uid}"]["children"]] == [f"emea-{uid}", f"north-{uid}"]


def test_progress_rejects_a_bad_period(measurement: httpx.Client) -> None:
    response = measurement.get("/api/v1/sales-targets/progress", params={"period": "2019-13"})
    assert response.status_code == 422 and "period" in response.text


class _Leader:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def turn(self):  # type: ignore[no-untyped-def]
        yield 1


def _stored(data: EventData, *, uid: str, n: int, at: dt.datetime) -> StoredEvent:
    envelope = new_envelope(
        data, source="test", event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{uid}/{n}"), occurred_at=at
    )
    return StoredEvent(envelope=envelope, data=data, topic=data.topic, partition=0, offset=n)


def _watch(client: Client, published: list[tuple[Any, uuid.UUID]], *, crash: bool = False):  # type: ignore[no-untyped-def]
    watch = SalesTargetWatch(
        warehouse=Warehouse(client),
        broker=None,  # type: ignore[arg-type]
        metrics=ServiceMetrics("test_sales_watch"),
        leadership=_Leader(),
        fx=FxRates(base="EUR", rates={}),
        rule=progress.AtRiskRule(share=D("0.9"), min_elapsed=D("0.2")),
    )

    async def publish(data: Any, *, event_id: uuid.UUID) -> None:
        published.append((data, event_id))
        if crash:
            raise RuntimeError("crashed after publishing, before saving the state")

    watch._publish = publish  # type: ignore[method-assign]
    return watch


async def test_an_at_risk_episode_is_announced_once(
    warehouse_client: Client, unique_id: str
) -> None:
    uid = unique_id
    august = dt.datetime(2019, 8, 1, tzinfo=dt.UTC)
    rows = [*_tree(uid), _target(uid, "b", "1000", month=8)]
    rows.append(_sale(uid, 1, "250", rep_id="rep-b"))
    insert_events(
        warehouse_client,
        events=[
            _stored(d, uid=uid, n=n, at=august + dt.timedelta(days=2)) for n, d in enumerate(rows)
        ],
    )
    eleventh = august + dt.timedelta(days=10)  # 10 of 31 days: 250 → 775, 0.775 of 1000
    crashed: list[tuple[Any, uuid.UUID]] = []
    with pytest.raises(RuntimeError):
        await _watch(warehouse_client, crashed, crash=True).check(now=eleventh)
    first: list[tuple[Any, uuid.UUID]] = []
    await _watch(warehouse_client, first).check(now=eleventh)
    again: list[tuple[Any, uuid.UUID]] = []
    await _watch(warehouse_client, again).check(now=eleventh + dt.timedelta(hours=1))
    mine = [(d, i) for d, i in first if d.target_id == f"t-b-{uid}"]
    assert [(d.event_type, d.forecast, d.forecast_share) for d, _ in mine] == [
        ("sales_target.at_risk", D("775.00"), D("0.775000"))
    ]
    assert [i for _, i in crashed] == [i for _, i in mine]  # the re-run repeats the event id
    assert [d for d, _ in again if d.target_id == f"t-b-{uid}"] == []
    # 700 more: 950 in 10 days → 2945: recovered, once
    insert_events(
        warehouse_client,
        events=[_stored(_sale(uid, 2, "700", rep_id="rep-b"), uid=uid, n=99, at=eleventh)],
    )
    recovered: list[tuple[Any, uuid.UUID]] = []
    await _watch(warehouse_client, recovered).check(now=eleventh)
    assert [d.event_type for d, _ in recovered if d.target_id == f"t-b-{uid}"] == [
        "sales_target.recovered"
    ]
