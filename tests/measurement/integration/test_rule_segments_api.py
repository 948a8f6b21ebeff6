"""Rule-based segments on a real broker and chDB: profiles (several versions over time), sales
and leads published to their topics; definitions written over the API; members as of a day
(JSON and CSV), sizes over time, the members' KPIs and series checked against values computed
by hand; validation errors naming the rule's path; roles; version conflicts, also of two
replacements sent at once.

Everything lies in 2092 (no other test uses that year), so the RFM window of the 365 days
ending 2092-03-31 sees only these sales; every rule names the test's own region ``R-<uid>``.

Hand computation (as of 2092-03-31, USD, no campaign so margin 1.0):

======== ===================================== ========== ===== ========= =======
customer profile (version: published)          sales      R F M segment
======== ===================================== ========== ===== ========= =======
k1       v1 01-10 tech medium; v2 03-05 large   03-10 100, 4 4 3 loyal
                                                03-20 300
k2       v1 01-10 tech large, tier gold         01-15 200, 2 4 2 at_risk
                                                03-12 50
k3       v1 02-10 retail large                  03-15 1000 3 1 5 need_attention
k4       v1 01-10 tech enterprise;              03-01 500  1 1 4 hibernating
         v2 02-20 finance enterprise
k5       none                                   03-30 40   5 1 1 new
======== ===================================== ========== ===== ========= =======

Recency days 11, 19, 16, 30, 1 → R 4, 2, 3, 1, 5; orders 2, 2, 1, 1, 1 → F 4, 4, 1, 1, 1
(three tie at the bottom); revenue 400, 250, 1000, 500, 40 → M 3, 2, 5, 4, 1.
"""

from __future__ import annotations

import datetime as dt
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
import pytest
from scenario_kit import wait_for

from shared.events.customers import CustomerProfileUpdated
from shared.events.ingest import LeadStageChanged, SaleCompleted
from shared.publisher import EventPublisher

pytestmark = pytest.mark.integration
VIEWER, MANAGER = "t-rule-segments-viewer", "t-rule-segments-manager"
AS_VIEWER = {"Authorization": f"Bearer {VIEWER}"}


def at(month: int, day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2092, month, day, hour, tzinfo=dt.UTC)


@pytest.fixture
def measurement(measurement_api) -> httpx.Client:  # type: ignore[no-untyped-def]
    return measurement_api(
        bearer=MANAGER,
        tokens={
            VIEWER: {"subject": "vic", "role": "viewer"},
            MANAGER: {"subject": "max", "role": "manager"},
        },
        own_monitor_group=True,
    )


def publish(bootstrap: str, uid: str) -> None:
    region = f"R-{uid}"

    def profile(key: str, version: int, when: dt.datetime, **fields: Any) -> None:
        data = CustomerProfileUpdated(
            customer_id=f"{key}-{uid}", version=version, region=region, **fields
        )
        events.publish(data, occurred_at=when)

    def sale(key: str, n: int, amount: str, when: dt.datetime, discount: str = "0") -> None:
        data = SaleCompleted(
            order_id=f"o{n}-{uid}",
            customer_id=f"{key}-{uid}",
            amount=Decimal(amount),
            discount_amount=Decimal(discount),
            currency="USD",
        )
        events.publish(data, occurred_at=when)

    def lead(name: str, stage: str, when: dt.datetime, customer: str | None = None) -> None:
        data = LeadStageChanged(
            lead_id=f"{name}-{uid}",
            campaign_id=None,
            channel="search",
            stage=stage,
            customer_id=f"{customer}-{uid}" if customer else None,
        )
        events.publish(data, occurred_at=when)

    with EventPublisher(bootstrap, source="test") as events:
        profile("k1", 2, at(3, 5), industry="tech", size="large")  # newer first
        profile("k1", 1, at(1, 10), industry="tech", size="medium")
        profile("k2", 1, at(1, 10), industry="tech", size="large", attributes={"tier": "gold"})
        profile("k3", 1, at(2, 10), industry="retail", size="large")
        profile("k4", 1, at(1, 10), industry="tech", size="enterprise")
        profile("k4", 2, at(2, 20), industry="finance", size="enterprise")
        sale("k1", 1, "100.00", at(3, 10))
        sale("k1", 2, "300.00", at(3, 20), discount="10.00")
        sale("k2", 3, "200.00", at(1, 15))
        sale("k2", 4, "50.00", at(3, 12))
        sale("k3", 5, "1000.00", at(3, 15))
        sale("k4", 6, "500.00", at(3, 1))
        sale("k5", 7, "40.00", at(3, 30))
        lead("L1", "visitor", at(2, 1))
        lead("L1", "lead", at(3, 2))
        lead("L1", "customer", at(3, 9), customer="k1")
        lead("L2", "mql", at(3, 4), customer="k3")  # not a member of large-tech
        lead("L3", "customer", at(1, 20), customer="k2")  # before March
        events.flush()


def cond(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


def test_rule_segments_end_to_end(measurement: httpx.Client, kafka_bootstrap: str) -> None:
    uid = uuid.uuid4().hex[:8]
    region = f"R-{uid}"
    publish(kafka_bootstrap, uid)
    wait_for(measurement, "/api/v1/segments/rfm?as_of=2092-03-31", lambda b: b["customers"] == 5)
    wait_for(
        measurement,
        "/api/v1/kpis/segments/rfm:loyal?from=2092-03-01T00:00:00Z&to=2092-04-01T00:00:00Z",
        lambda b: b["leads"] == 1,
    )

    large_tech = {
        "segment_id": f"large-tech-{uid}",
        "name": "Large tech customers",
        "rule": {
            "conditions": [
                cond("industry", "eq", "tech"),
                cond("size", "in", ["large", "enterprise"]),
                cond("region", "eq", region),
            ]
        },
    }
    created = measurement.post("/api/v1/segments", json=large_tech)
    assert created.status_code == 201, created.text
    assert created.json() | {"written_at": None} == {
        **large_tech,
        "kind": "rule",
        "version": 1,
        "description": "",
        "rfm_days": 365,
        "author": "max",
        "written_at": None,
    }
    seg = f"/api/v1/segments/large-tech-{uid}"
    again = measurement.post("/api/v1/segments", json=large_tech)
    assert again.status_code == 409 and again.json()["detail"][0]["field"] == "segment_id"

    # members as of three days: profile versions over time
    def ids(as_of: str, path: str = seg) -> list[str]:
        body = measurement.get(f"{path}/customers?as_of={as_of}").json()
        return [m["customer_id"].removesuffix(f"-{uid}") for m in body["members"]]

    # (profiles arrive on their own topic: wait until every version is in)
    wait_for(
        measurement,
        f"{seg}/sizes?from=2092-01-01&to=2092-03-31&bucket=month",
        lambda body: (
            body["points"]
            == [
                {"start": "2092-01-01", "as_of": "2092-01-31", "size": 2},
                {"start": "2092-02-01", "as_of": "2092-02-29", "size": 1},
                {"start": "2092-03-01", "as_of": "2092-03-31", "size": 2},
            ]
        ),
    )
    assert ids("2092-01-31") == ["k2", "k4"]
    assert ids("2092-02-29") == ["k2"]  # k4 turned finance on 02-20
    assert ids("2092-03-31") == ["k1", "k2"]  # k1 became large on 03-05

    # members' KPIs of March (members as of 03-31: k1, k2)
    kpis = measurement.get(
        f"/api/v1/kpis/segments/large-tech-{uid}?from=2092-03-01T00:00:00Z&to=2092-04-01T00:00:00Z"
    ).json()
    assert {k: kpis[k] for k in ("as_of", "members", "currency", "missing_rates")} == {
        "as_of": "2092-03-31",
        "members": 2,
        "currency": "USD",
        "missing_rates": [],
    }
    assert {
        k: kpis[k]
        for k in ("revenue", "gross_profit", "discounts", "orders", "customers", "average_check")
    } == {
        "revenue": "450.00",
        "gross_profit": "450.00",
        "discounts": "10.00",
        "orders": 3,
        "customers": 2,
        "average_check": "150.00",
    }
    assert (kpis["repeat_purchase_rate"], kpis["new_customers"]) == ("0.500000", 1)
    assert kpis["leads"] == 1 and kpis["lost"] == 0
    assert kpis["funnel"] == dict.fromkeys(
        ("visitor", "lead", "mql", "sql", "sal", "opportunity", "customer"), 1
    )

    series = measurement.get(
        f"/api/v1/kpis/segments/large-tech-{uid}/series"
        "?from=2092-03-09T00:00:00Z&to=2092-03-13T00:00:00Z&bucket=day"
    ).json()
    assert (series["as_of"], series["members"]) == ("2092-03-12", 2)
    zero = {"revenue": "0.00", "gross_profit": "0.00", "orders": 0, "customers": 0}
    zero |= {"average_check": None, "new_customers": 0, "leads": 0}
    assert series["points"] == [
        {"start": "2092-03-09", **zero, "leads": 1},
        {
            "start": "2092-03-10",
            **zero,
            "revenue": "100.00",
            "gross_profit": "100.00",
            "orders": 1,
            "customers": 1,
            "average_check": "100.00",
            "new_customers": 1,
        },
        {"start": "2092-03-11", **zero},
        {
            "start": "2092-03-12",
            **zero,
            "revenue": "50.00",
            "gross_profit": "50.00",
            "orders": 1,
            "customers": 1,
            "average_check": "50.00",
        },
    ]

    # profile and RFM together; CSV for the CRM
    mixed = {
        "segment_id": f"emea-best-{uid}",
        "name": "Loyal or big spenders",
        "rule": {
            "conditions": [
                cond("region", "eq", region),
                {"any": [cond("rfm_segment", "eq", "loyal"), cond("monetary_score", "gte", 5)]},
            ]
        },
    }
    assert measurement.post("/api/v1/segments", json=mixed).status_code == 201
    wait_for(
        measurement,
        f"/api/v1/segments/emea-best-{uid}/customers?as_of=2092-03-31",
        lambda body: body["size"] == 2,
    )
    csv = measurement.get(f"/api/v1/segments/emea-best-{uid}/customers?as_of=2092-03-31&format=csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.text.split("\r\n") == [
        "customer_id,profile_version,industry,size,region,age_band,attributes,rfm_segment,"
        "recency_score,frequency_score,monetary_score,recency_days,last_purchase,orders,revenue,"
        "currency",
        f"k1-{uid},2,tech,large,{region},,{{}},loyal,4,4,3,11,2092-03-20,2,400.00,USD",
        f"k3-{uid},1,retail,large,{region},,{{}},need_attention,3,1,5,16,2092-03-15,1,1000.00,USD",
        "",
    ]
    # an RFM segment is a segment id too (k5 has no profile)
    assert ids("2092-03-31", "/api/v1/segments/rfm:new") == ["k5"]
    assert ids("2092-03-31", "/api/v1/segments/rfm:at_risk") == ["k2"]

    # list, replace with a version check, remove
    listed = measurement.get("/api/v1/segments", headers=AS_VIEWER).json()
    mine = sorted(s["segment_id"] for s in listed["segments"] if s["segment_id"].endswith(uid))
    assert mine == [f"emea-best-{uid}", f"large-tech-{uid}"]
    assert "rfm:champions" in listed["rfm_segments"]
    replacement = {**large_tech, "version": 1, "name": "Large tech (any region)"}
    del replacement["segment_id"]
    replacement["rule"] = {"conditions": large_tech["rule"]["conditions"][:2]}  # type: ignore[index]
    replaced = measurement.put(seg, json=replacement)
    assert replaced.status_code == 200 and replaced.json()["version"] == 2
    stale = measurement.put(seg, json=replacement)
    assert stale.status_code == 409
    assert stale.json()["detail"][0]["field"] == "version"
    assert stale.json()["detail"][0]["ctx"] == {"current_version": "2"}
    assert measurement.get(seg, headers=AS_VIEWER).json()["name"] == "Large tech (any region)"

    # two replacements of version 2 at once: exactly one stands
    def put(name: str) -> httpx.Response:
        return measurement.put(seg, json={**replacement, "version": 2, "name": name})

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(put, ["first", "second"]))
    codes = sorted(r.status_code for r in answers)
    assert codes == [200, 409]
    winner = next(r for r in answers if r.status_code == 200).json()
    assert winner["version"] == 3
    assert measurement.get(seg).json()["name"] == winner["name"]

    assert measurement.delete(f"{seg}?version=2").status_code == 409
    assert measurement.delete(seg).status_code == 204
    assert measurement.get(seg).status_code == 404
    assert measurement.get(f"{seg}/customers").status_code == 404
    assert measurement.post("/api/v1/segments", json=large_tech).json()["version"] == 5


def test_segment_validation_and_roles(measurement: httpx.Client) -> None:
    rule = {"conditions": [cond("industry", "eq", "tech"), cond("region", "gte", "x")]}
    bad = measurement.post("/api/v1/segments", json={"name": "x", "rule": rule})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["field"] == "rule.conditions.1.op"
    rule = {"conditions": [{"any": [cond("colour", "eq", "red")]}]}
    bad = measurement.post("/api/v1/segments", json={"name": "x", "rule": rule})
    assert bad.json()["detail"][0]["field"] == "rule.conditions.0.any.0.field"
    bad = measurement.post("/api/v1/segments", json={"name": "x", "rule": {}, "segment_id": "A B"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "segment_id"
    ok = {"name": "x", "rule": {"conditions": [cond("industry", "eq", "tech")]}}
    forbidden = measurement.post("/api/v1/segments", json=ok, headers=AS_VIEWER)
    assert forbidden.status_code == 403
    assert measurement.get("/api/v1/segments/nope").status_code == 404
    assert measurement.get("/api/v1/segments/rfm:vip").status_code == 404
    assert measurement.put("/api/v1/segments/rfm:new", json={**ok, "version": 1}).status_code == 409
    sizes = "/api/v1/segments/rfm:new/sizes?from=2092-03-01&to=2092-02-01"
    assert measurement.get(sizes).json()["detail"][0]["field"] == "to"
    sizes = "/api/v1/segments/rfm:new/sizes?from=2080-01-01&to=2092-02-01&bucket=day"
    assert measurement.get(sizes).json()["detail"][0]["field"] == "to"
    kpis = "/api/v1/kpis/segments/rfm:new?currency=JPY"
    assert measurement.get(kpis).json()["detail"][0]["field"] == "currency"
    created = measurement.post("/api/v1/segments", json=ok)
    assert created.status_code == 201 and created.json()["segment_id"].startswith("seg-")


def test_two_creates_of_one_id_at_once(measurement: httpx.Client) -> None:
    body = {
        "segment_id": f"twin-{uuid.uuid4().hex[:8]}",
        "name": "twin",
        "rule": {"conditions": [cond("industry", "eq", "tech")]},
    }

    def create(name: str) -> httpx.Response:
        return measurement.post("/api/v1/segments", json={**body, "name": name})

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(create, ["a", "b"]))
    assert sorted(r.status_code for r in answers) == [201, 409]
    lost = next(r for r in answers if r.status_code == 409)
    assert lost.json()["detail"][0]["field"] == "segment_id"
    won = next(r for r in answers if r.status_code == 201).json()
    stored = measurement.get(f"/api/v1/segments/{body['segment_id']}").json()
    assert (stored["version"], stored["name"]) == (1, won["name"])
