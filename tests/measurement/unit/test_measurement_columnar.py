"""Contract between the two decoding paths of measurement's ingestion.

``columnar`` (bulk check into column lists) must never accept what the pydantic gate
(``shared.events.decode``) rejects, and what it accepts it must store exactly as the pydantic
path would (same values per column). It may decline unusual-but-valid input: such messages are
decoded by the pydantic gate, so the canonical cases below must be accepted by both.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from services.measurement import analytics, columnar
from services.measurement.analytics import StoredEvent
from shared import topics
from shared.events import EventRejected, decode
from shared.money import FxRates

DROP = object()
EID = "0b7e4c8a-1d2e-4f00-9a1b-2c3d4e5f6a7b"


def envelope(kind: str, data: dict[str, Any], /, **extra: Any) -> dict[str, Any]:
    doc = {
        "event_id": EID,
        "event_type": kind,
        "occurred_at": "2027-03-10T12:00:00.123456Z",
        "source": "test",
        "schema_version": 1,
        "data": data,
    }
    doc.update(extra)
    return {k: v for k, v in doc.items() if v is not DROP}


SPEND = {"campaign_id": "c-1", "channel": "search", "amount": "12.50", "currency": "USD"}
AD = {"campaign_id": "c-1", "channel": "search", "impressions": 100, "clicks": 3}
LEAD = {
    "lead_id": "l-1",
    "campaign_id": "c-1",
    "channel": "web",
    "stage": "customer",
    "customer_id": "k-1",
    "expected_value": None,
}
SALE = {
    "order_id": "o-1",
    "customer_id": "k-1",
    "campaign_id": None,
    "channel": None,
    "amount": "100.00",
    "discount_amount": "0.00",
    "currency": "EUR",
}
TASK = {"campaign_id": "c-1", "stage_id": "s-1", "status": "done", "assignee": None, "comment": ""}
BASE = {
    topics.SPEND: ("spend.recorded", SPEND),
    topics.AD_METRICS: ("ad.metrics_reported", AD),
    topics.LEADS: ("lead.stage_changed", LEAD),
    topics.SALES: ("sale.completed", SALE),
    topics.TASKS: ("task.status_changed", TASK),
}


def case(topic: str, *, data: dict[str, Any] | None = None, drop: tuple[str, ...] = (), **env):  # type: ignore[no-untyped-def]
    event_type, base = BASE[topic]
    payload = {**copy.deepcopy(base), **(data or {})}
    for name in drop:
        payload.pop(name, None)
    doc = envelope(event_type, payload, **env)
    return pytest.param(topic, json.dumps(doc).encode(), id=f"{topic}:{data}:{drop}:{env}")


CANONICAL = [
    case(topics.SPEND),
    case(topics.SPEND, data={"amount": 5}),
    case(topics.SPEND, data={"amount": "0"}),
    case(topics.SPEND, data={"amount": "9999999999999999.99"}),
    case(topics.SPEND, data={"channel": "Paid_Search"}),
    case(topics.SPEND, occurred_at="2027-03-10T14:00:00+02:00"),
    case(topics.SPEND, occurred_at="2027-03-10T12:00:00Z"),
    case(topics.SPEND, event_id=EID.upper()),
    case(topics.AD_METRICS),
    case(topics.AD_METRICS, data={"impressions": 0, "clicks": 0}),
    case(topics.AD_METRICS, data={"clicks": 100}),
    case(topics.LEADS),
    case(topics.LEADS, data={"stage": "lost", "customer_id": None}, drop=("campaign_id",)),
    case(topics.LEADS, data={"stage": "opportunity", "expected_value": "1500.5"}),
    case(topics.LEADS, data={"lead_id": "x" * 128}),
    case(topics.SALES),
    case(topics.SALES, drop=("discount_amount", "campaign_id", "channel")),
    case(topics.SALES, data={"campaign_id": "c-1", "channel": "web", "discount_amount": "1.5"}),
    case(topics.TASKS),
    case(topics.TASKS, data={"assignee": "ann", "comment": "ü" * 2000}),
    case(topics.TASKS, drop=("assignee", "comment")),
    case(topics.SPEND, schema_version=DROP),
]

MALFORMED = [
    pytest.param(topics.SPEND, b'{"event_id": ', id="bad-json"),
    pytest.param(topics.SPEND, b"[1, 2]", id="not-an-object"),
    pytest.param(topics.SPEND, "é".encode("latin-1"), id="not-utf8"),
    case(topics.SPEND, data={"amount": "-1.00"}),
    case(topics.SPEND, data={"amount": "1.234"}),
    case(topics.SPEND, data={"amount": "12345678901234567.00"}),
    case(topics.SPEND, data={"amount": "abc"}),
    case(topics.SPEND, data={"amount": -3}),
    case(topics.SPEND, data={"currency": "usd"}),
    case(topics.SPEND, data={"currency": "US"}),
    case(topics.SPEND, data={"currency": "USD\n"}),
    case(topics.SPEND, data={"campaign_id": ""}),
    case(topics.SPEND, data={"campaign_id": "x" * 129}),
    case(topics.SPEND, data={"campaign_id": 7}),
    case(topics.SPEND, data={"channel": None}),
    case(topics.SPEND, data={"extra": 1}),
    case(topics.SPEND, drop=("currency",)),
    case(topics.SPEND, event_id="not-a-uuid"),
    case(topics.SPEND, event_id=EID[:-1] + "g"),
    case(topics.SPEND, occurred_at="2027-03-10T12:00:00"),
    case(topics.SPEND, occurred_at="2027-02-30T12:00:00Z"),
    case(topics.SPEND, event_type="sale.completed"),
    case(topics.SPEND, event_type="spend.teleported"),
    case(topics.SPEND, source=""),
    case(topics.SPEND, source="s" * 101),
    case(topics.SPEND, schema_version=0),
    case(topics.SPEND, schema_version=None),
    case(topics.SPEND, surprise=True),
    case(topics.AD_METRICS, data={"clicks": 101}),
    case(topics.AD_METRICS, data={"impressions": -1}),
    case(topics.AD_METRICS, data={"impressions": "many"}),
    case(topics.LEADS, data={"stage": "customer", "customer_id": None}),
    case(topics.LEADS, drop=("customer_id",)),
    case(topics.LEADS, data={"stage": "teleported"}),
    case(topics.LEADS, data={"expected_value": "-5.00"}),
    case(topics.LEADS, drop=("channel",)),
    case(topics.SALES, data={"discount_amount": None}),
    case(topics.SALES, drop=("customer_id",)),
    case(topics.TASKS, data={"status": "DONE"}),
    case(topics.TASKS, data={"comment": "x" * 2001}),
]

UNUSUAL_BUT_VALID = [
    case(topics.SPEND, data={"campaign_id": "  c-1  "}),
    case(topics.SPEND, data={"channel": "Séarch"}),
    case(topics.SPEND, data={"amount": 12.5}),
    case(topics.SPEND, data={"amount": "0012.50"}),
    case(topics.SPEND, event_id=EID.replace("-", "")),
    case(topics.SPEND, occurred_at="2027-03-10 12:00:00Z"),
    case(topics.SPEND, occurred_at=1234567890),
    case(topics.SPEND, schema_version=DROP, event_id="{" + EID + "}"),
]


def stored_by_pydantic(topic: str, value: bytes) -> tuple[Any, ...] | None:
    """The row the pydantic path stores (without topic/partition/offset), or None if rejected."""
    try:
        envelope, data = decode(value, topic=topic)
    except EventRejected:
        return None
    event = StoredEvent(envelope=envelope, data=data, topic=topic, partition=0, offset=0)
    ((table, rows),) = analytics.rows_by_table([event]).items()
    row = rows[0]
    names = analytics.COLUMNS[table]
    values = dict(zip(names, row, strict=True))
    at = values["occurred_at"]
    ms = (at - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1)
    out = [str(values["event_id"]), ms, values["source"]]
    for name in names[6:]:
        item = values[name]
        out.append(Decimal(item) if isinstance(item, Decimal) else item)
    return tuple(out)


def stored_by_columnar(topic: str, value: bytes) -> tuple[Any, ...] | None:
    row = columnar.accepts(value, topic=topic)
    if row is None:
        return None
    return tuple(Decimal(v) if isinstance(v, str) and _is_money(v) else v for v in row)


def _is_money(text: str) -> bool:
    return text.replace(".", "", 1).isdigit()


@pytest.mark.parametrize(("topic", "value"), CANONICAL)
def test_canonical_messages_are_accepted_by_both_with_the_same_stored_values(
    topic: str, value: bytes
) -> None:
    pydantic_row = stored_by_pydantic(topic, value)
    assert pydantic_row is not None
    assert _money_normalised(stored_by_columnar(topic, value)) == _money_normalised(pydantic_row)


@pytest.mark.parametrize(("topic", "value"), MALFORMED)
def test_malformed_messages_are_rejected_by_both(topic: str, value: bytes) -> None:
    assert stored_by_pydantic(topic, value) is None
    assert columnar.accepts(value, topic=topic) is None


@pytest.mark.parametrize(("topic", "value"), UNUSUAL_BUT_VALID)
def test_unusual_but_valid_messages_are_left_to_the_pydantic_gate(topic: str, value: bytes) -> None:
    assert stored_by_pydantic(topic, value) is not None
    accepted = stored_by_columnar(topic, value)
    if accepted is not None:  # if the bulk check takes it, it must store the same values
        assert _money_normalised(accepted) == _money_normalised(stored_by_pydantic(topic, value))


def _money_normalised(row: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
    if row is None:
        return None
    return tuple(v.quantize(Decimal("0.01")) if isinstance(v, Decimal) else v for v in row)


def record(topic: str, value: bytes, offset: int = 0) -> SimpleNamespace:
    return SimpleNamespace(topic=topic, value=value, key=b"k", partition=1, offset=offset)


def test_split_builds_arrow_tables_and_leaves_the_rest_to_the_gate() -> None:
    good = [record(topics.LEADS, p.values[1], n) for n, p in enumerate(CANONICAL[11:15])]
    bad = record(topics.LEADS, MALFORMED[32].values[1], 99)
    planning = record(topics.PLANNING, b"{}", 100)
    batch = columnar.split([*good, bad, planning])
    assert batch.unusual == [bad, planning]
    table = columnar.to_arrow(batch.tables["lead_events"])
    assert table.num_rows == 4 and table.schema == columnar.SCHEMAS["lead_events"]
    assert table.column("_offset").to_pylist() == [0, 1, 2, 3]
    assert table.column("expected_value").to_pylist()[2] == Decimal("1500.50")
    assert batch.campaign_ids() == {"c-1"}


def test_currency_conversion_matches_the_domain_and_rejects_without_a_rate() -> None:
    eur = record(topics.SPEND, CANONICAL[0].values[1].replace(b'"USD"', b'"EUR"'), 1)
    jpy = record(topics.SPEND, CANONICAL[0].values[1].replace(b'"USD"', b'"JPY"'), 2)
    usd = record(topics.SPEND, CANONICAL[0].values[1], 3)
    batch = columnar.split([eur, jpy, usd])
    fx = FxRates(base="USD", rates={"EUR": Decimal("1.10")})
    rejected = columnar.in_campaign_currency(batch, currencies={}, fx=fx)
    assert [(r.offset, reason[:37]) for r, reason in rejected] == [
        (2, "data.currency: cannot convert JPY to ")
    ]
    spend = batch.tables["spend"].columns
    assert spend["amount"] == ["13.75", "12.50"] and spend["currency"] == ["USD", "USD"]
    assert spend["_offset"] == [1, 3]


def test_event_ids_are_stored_in_canonical_form() -> None:
    value = CANONICAL[7].values[1]
    assert stored_by_columnar(topics.SPEND, value)[0] == str(uuid.UUID(EID))  # type: ignore[index]
