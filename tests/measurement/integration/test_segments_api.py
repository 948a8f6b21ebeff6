"""RFM segments on a real broker and chDB: sales and customer profiles published to their
topics, the segment sizes and the member list (JSON and CSV) checked against values computed by
hand (the same ten customers as ``unit/test_rfm.py``); the latest profile version wins whatever
the arrival order, and a malformed profile reaches the DLQ with a reason naming the field.

The sales lie in 2098 (no other test uses that year; one more in 2097, outside the window), so
the window of the 365 days ending 2098-12-31 sees only them.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import httpx
import pytest
from scenario_kit import wait_for

from shared.events.customers import CustomerProfileUpdated
from shared.events.ingest import SaleCompleted
from shared.kafka import ERROR_HEADER
from shared.publisher import EventPublisher
from shared.topics import CUSTOMERS, SALES, dlq

pytestmark = pytest.mark.integration
TOKEN = "t-segments-viewer"
QUERY = "as_of=2098-12-31&days=365"


def at(month: int, day: int) -> dt.datetime:
    return dt.datetime(2098, month, day, 12, tzinfo=dt.UTC)


# customer: the day of its last sale, and its orders' amounts (the last one on that day, the
# others on 10 January)
SALES_OF = {
    "c01": (at(12, 30), ["100.00"] * 10),
    "c02": (at(12, 29), ["100.00"] * 7 + ["200.00"]),
    "c03": (at(12, 25), ["50.00"]),
    "c04": (at(12, 20), ["100.00"] * 3),
    "c05": (at(11, 30), ["70.00"] * 6 + ["80.00"]),
    "c06": (at(11, 30), ["60.00"] * 2),
    "c07": (at(10, 1), ["100.00"] * 5 + ["200.00"]),
    "c08": (at(6, 1), ["80.00"] * 5),
    "c09": (at(3, 1), ["40.00"]),
    "c10": (at(1, 15), ["30.00"] * 2),
}


@pytest.fixture
def measurement(measurement_api) -> httpx.Client:  # type: ignore[no-untyped-def]
    return measurement_api(bearer=TOKEN, timeout=10, own_monitor_group=True)


def publish(bootstrap: str, uid: str) -> None:
    """The sales (one re-delivered, one outside the window) and the profiles (c01's newer
    version before its older one; a poison profile of c03)."""
    with EventPublisher(bootstrap, source="test") as events:
        for key, (last, amounts) in SALES_OF.items():
            customer_id = f"{key}-{uid}"
            for n, amount in enumerate(amounts):
                sale = events.publish(
                    SaleCompleted(
                        order_id=f"o-{customer_id}-{n}",
                        customer_id=customer_id,
                        amount=Decimal(amount),
                        currency="USD",
                    ),
                    occurred_at=last if n == len(amounts) - 1 else at(1, 10),
                )
            events.send_envelope(sale, topic=SALES, key=customer_id)  # counts once
        events.publish(
            SaleCompleted(
                order_id=f"o-old-{uid}",
                customer_id=f"c09-{uid}",
                amount=Decimal("999.00"),
                currency="USD",
            ),
            occurred_at=dt.datetime(2097, 12, 31, 23, 59, tzinfo=dt.UTC),
        )
        newer = CustomerProfileUpdated(
            customer_id=f"c01-{uid}",
            version=2,
            industry="retail",
            size="large",
            region="EMEA",
            age_band="35-44",
            attributes={"tier": "gold"},
        )
        older = CustomerProfileUpdated(
            customer_id=f"c01-{uid}", version=1, industry="wholesale", size="small"
        )
        events.publish(newer, occurred_at=at(6, 1))
        events.publish(older, occurred_at=at(7, 1))  # arrives later, still older
        events.publish(CustomerProfileUpdated(customer_id=f"c02-{uid}", version=1))
        poison = {
            "event_id": str(uuid.uuid4()),
            "event_type": "customer.profile_updated",
            "occurred_at": "2098-06-01T00:00:00Z",
            "source": "crm",
            "schema_version": 1,
            "data": {"customer_id": f"c03-{uid}", "version": 0, "size": "large"},
        }
        events.send_raw(CUSTOMERS, json.dumps(poison).encode(), key=f"c03-{uid}")
        events.flush()


def test_rfm_segments_members_and_csv(
    measurement: httpx.Client, kafka_bootstrap: str, topic_reader
) -> None:  # type: ignore[no-untyped-def]
    uid = uuid.uuid4().hex[:8]
    publish(kafka_bootstrap, uid)

    overview = wait_for(
        measurement, f"/api/v1/segments/rfm?{QUERY}", lambda body: body["customers"] == 10
    )
    assert overview == {
        "as_of": "2098-12-31",
        "days": 365,
        "window_start": "2098-01-01",
        "currency": "USD",
        "fx_rates": {},
        "missing_rates": [],
        "customers": 10,
        "unconverted_customers": 0,
        "segments": {
            "champions": 2,
            "loyal": 1,
            "new": 1,
            "promising": 1,
            "at_risk": 2,
            "hibernating": 2,
            "need_attention": 1,
        },
        "r_scores": dict.fromkeys("12345", 2),
        "f_scores": dict.fromkeys("12345", 2),
        "m_scores": dict.fromkeys("12345", 2),
    }

    path = f"/api/v1/segments/rfm/customers?{QUERY}&segment=champions"
    champions = wait_for(
        measurement,
        path,
        lambda body: [m["profile"] and m["profile"]["version"] for m in body["members"]] == [2, 1],
    )
    assert champions["segment"] == "champions"
    assert champions["members"] == [
        {
            "customer_id": f"c01-{uid}",
            "segment": "champions",
            "recency_days": 1,
            "frequency": 10,
            "monetary": "1000.00",
            "r_score": 5,
            "f_score": 5,
            "m_score": 5,
            "profile": {
                "version": 2,
                "industry": "retail",
                "size": "large",
                "region": "EMEA",
                "age_band": "35-44",
                "attributes": {"tier": "gold"},
            },
        },
        {
            "customer_id": f"c02-{uid}",
            "segment": "champions",
            "recency_days": 2,
            "frequency": 8,
            "monetary": "900.00",
            "r_score": 5,
            "f_score": 5,
            "m_score": 5,
            "profile": {
                "version": 1,
                "industry": None,
                "size": None,
                "region": None,
                "age_band": None,
                "attributes": {},
            },
        },
    ]

    csv = measurement.get(f"/api/v1/segments/rfm/customers?{QUERY}&format=csv")
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")
    lines = [
        "customer_id,segment,recency_days,frequency,monetary,currency,r_score,f_score,m_score,"
        "profile_version,industry,size,region,age_band,attributes",
        f"c01-{uid},champions,1,10,1000.00,USD,5,5,5,2,retail,large,EMEA,35-44,"
        '"{""tier"": ""gold""}"',
        f"c02-{uid},champions,2,8,900.00,USD,5,5,5,1,,,,,{{}}",
        f"c03-{uid},new,6,1,50.00,USD,4,1,1,,,,,,",
        f"c04-{uid},promising,11,3,300.00,USD,4,3,3,,,,,,",
        f"c05-{uid},loyal,31,7,500.00,USD,3,4,4,,,,,,",
        f"c06-{uid},need_attention,31,2,120.00,USD,3,2,2,,,,,,",
        f"c07-{uid},at_risk,91,6,700.00,USD,2,4,4,,,,,,",
        f"c08-{uid},at_risk,213,5,400.00,USD,2,3,3,,,,,,",
        f"c09-{uid},hibernating,305,1,40.00,USD,1,1,1,,,,,,",
        f"c10-{uid},hibernating,350,2,60.00,USD,1,2,2,,,,,,",
    ]
    assert csv.text == "\r\n".join(lines) + "\r\n"

    (rejected,) = topic_reader(
        kafka_bootstrap, dlq(CUSTOMERS), expect=1, match=lambda r: r.key == f"c03-{uid}".encode()
    )
    assert dict(rejected.headers)[ERROR_HEADER].decode().startswith("data.version")

    bad = measurement.get("/api/v1/segments/rfm?currency=JPY")
    assert bad.status_code == 422 and "currency" in bad.text
    bad = measurement.get("/api/v1/segments/rfm/customers?segment=vip")
    assert bad.status_code == 422 and "segment" in bad.text
    assert measurement.get("/api/v1/segments/rfm?days=0").status_code == 422
