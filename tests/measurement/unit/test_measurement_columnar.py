"""Contract between the two decoding paths of measurement's ingestion.

``columnar`` (a batch parsed by ``pyarrow.json`` and checked with ``pyarrow.compute``) must
never accept what the pydantic gate (``shared.events.decode``) rejects, and what it accepts it
must store exactly as the pydantic path would (same values per column). It may decline
unusual-but-valid input: such messages are decoded by the pydantic gate, so the canonical cases
below must be accepted by both. Every case is checked alone and inside a batch of good messages
(a value that breaks the batch's parse must be declined alone).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from services.measurement import domain, warehouse
from services.measurement.warehouse import StoredEvent, columns
from shared import topics
from shared.events import EventRejected, decode
from shared.events import columnar as batch_check
from shared.money import FxRates


class _Drop:
    """Marks a field the message leaves out; its repr is stable, so test ids are too (pytest-xdist
    workers must collect the same ids)."""

    def __repr__(self) -> str:
        return "DROP"


DROP = _Drop()
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
SALE_UNITS = {
    "partner_id": "partner-7",
    "rep_id": "rep-42",
    "region": "EMEA North",
    "product_id": "sku-100",
    "brand": "Acme Pro",
    "list_price": "120.00",
    "discount_reason": "spring promo",
    "sale_kind": "sell_out",
    "outlet": "Store 12, Lyon",
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
    case(topics.SALES, data={"campaign_id": "c-1", "channel": "web", "discount_amount": "1.5"}),
    # the optional sales units and pricing: all, some, explicitly null, at their bounds
    case(topics.SALES, data=SALE_UNITS),
    case(topics.SALES, data={"partner_id": "p-1", "sale_kind": "sell_in", "list_price": "100"}),
    case(topics.SALES, data=dict.fromkeys(SALE_UNITS)),
    case(topics.SALES, data={"list_price": "100.00", "discount_reason": "r" * 100}),
    case(
        topics.SALES,
        data={"region": "é" * 200, "brand": "b" * 200, "rep_id": "r" * 128, "outlet": "é" * 200},
    ),
    case(topics.SALES, data={"amount": "0", "list_price": "0"}),
    case(topics.TASKS),
    case(topics.TASKS, data={"assignee": "ann", "comment": "ü" * 2000}),
    case(topics.TASKS, drop=("assignee", "comment")),
    case(topics.SPEND, occurred_at="1970-01-01T00:00:00Z"),
    case(topics.SPEND, occurred_at="2028-02-29T23:59:59.999999-11:30"),
    case(topics.LEADS, data={"customer_id": "k\u2003k"}),
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
    # bounded to what every store holds (SPEC §3)
    case(topics.SPEND, data={"campaign_id": "c\u00e9-\x001"}),
    case(topics.SPEND, data={"channel": "se\x00arch"}),
    case(topics.SPEND, occurred_at=1234567890),
    case(topics.SPEND, occurred_at="0001-01-01T00:00:00Z"),
    case(topics.SPEND, occurred_at="1969-12-31T23:59:59Z"),
    case(topics.SPEND, occurred_at="2149-06-07T00:00:00Z"),
    case(topics.SPEND, data={"currency": "QQQ"}),
    case(topics.SALES, data={"amount": "5"}, schema_version=2),
    case(topics.SPEND, schema_version=99),
    case(topics.SPEND, schema_version=True),
    case(topics.AD_METRICS, data={"impressions": 2**64 + 5, "clicks": 1}),
    case(topics.AD_METRICS, data={"impressions": 10**12 + 1, "clicks": 1}),
    case(topics.LEADS, data={"expected_value": "1E+400"}),
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
    case(topics.SALES, data={"list_price": "99.99"}),  # below amount (100.00)
    case(topics.SALES, data={"amount": "0.01", "list_price": "0"}),
    case(topics.SALES, data={"list_price": "-1.00"}),
    case(topics.SALES, data={"list_price": "120.001"}),
    case(topics.SALES, data={"partner_id": "p\x00-1"}),
    case(topics.SALES, data={"partner_id": ""}),
    case(topics.SALES, data={"rep_id": "r" * 129}),
    case(topics.SALES, data={"product_id": 7}),
    case(topics.SALES, data={"region": "r" * 201}),
    case(topics.SALES, data={"brand": "Ac\x00me"}),
    case(topics.SALES, data={"outlet": "o" * 201}),
    case(topics.SALES, data={"outlet": ""}),
    case(topics.SALES, data={"discount_reason": ""}),
    case(topics.SALES, data={"discount_reason": "r" * 101}),
    case(topics.SALES, data={"discount_reason": "pro\x00mo"}),
    case(topics.SALES, data={"sale_kind": "resale"}),
    case(topics.SALES, data={"sale_kind": "SELL_IN"}),
    case(topics.TASKS, data={"status": "DONE"}),
    case(topics.TASKS, data={"comment": "x" * 2001}),
    case(topics.SPEND, occurred_at="2027-03-10T24:00:00Z"),
    case(topics.SPEND, occurred_at="2027-13-10T12:00:00Z"),
    case(topics.SPEND, occurred_at="2027-03-10T12:00:00+24:00"),
    case(topics.SPEND, data={"currency": None}),
    case(topics.SPEND, data={"amount": True}),
    case(topics.SPEND, data=None, drop=tuple(SPEND)),
    case(topics.SPEND, data={"channel": " "}),
    case(topics.AD_METRICS, data={"impressions": 1.5}),
    case(topics.AD_METRICS, data={"impressions": True}),
    case(topics.AD_METRICS, data={"clicks": None}),
    case(topics.LEADS, data={"lead_id": "\t"}),
    case(topics.SALES, data={"amount": None}),
    case(topics.TASKS, data={"status": None}),
    pytest.param(topics.SPEND, b"null", id="null"),
    pytest.param(topics.SPEND, b"", id="empty"),
    pytest.param(topics.SPEND, b" ", id="blank"),
    pytest.param(topics.SPEND, b"{}", id="empty-object"),
    pytest.param(topics.SPEND, b'{"data": null}', id="null-data"),
    pytest.param(topics.SPEND, b'"text"', id="string"),
    pytest.param(topics.SPEND, rb'{"event_id": "\ud800"}', id="lone-surrogate"),
]

UNUSUAL_BUT_VALID = [
    case(topics.SPEND, data={"campaign_id": "  c-1  "}),
    case(topics.SPEND, data={"channel": "Séarch"}),
    case(topics.SPEND, data={"amount": 5}),  # a JSON number: the batch parse reads money as text
    case(topics.SPEND, data={"amount": 12.5}),
    case(topics.SPEND, data={"amount": "0012.50"}),
    case(topics.SPEND, event_id=EID.replace("-", "")),
    case(topics.SPEND, occurred_at="2027-03-10 12:00:00Z"),
    case(topics.SPEND, schema_version=DROP, event_id="{" + EID + "}"),
    case(topics.SPEND, occurred_at="2027-03-10T12:00:00.1234567Z"),
    case(topics.SPEND, occurred_at="2027-03-10t12:00:00z"),
    case(topics.SPEND, data={"campaign_id": "\u00a0c-1"}),
    case(topics.SPEND, data={"campaign_id": "c-1\u3000"}),
    case(topics.AD_METRICS, data={"impressions": 100.0}),
    case(topics.AD_METRICS, data={"impressions": "100"}),
    # absent and null are the same to the batch parse: a null that may mean "absent" is declined
    case(topics.SALES, drop=("discount_amount", "campaign_id", "channel")),
    case(topics.SALES, data={"partner_id": " p-1 ", "region": "EMEA\u3000"}),  # the models strip
    case(topics.SALES, data={"list_price": 120}),
    case(topics.SALES, data={"list_price": "100.0", "amount": "100"}),
    case(topics.SPEND, schema_version=DROP),
    case(topics.SPEND, data={"amount": "1e3"}),
    case(topics.LEADS, data={"stage": "lead"}, drop=("campaign_id", "customer_id")),
    case(topics.TASKS, data={"comment": None}),
]


# whitespace that the models strip from identifiers (Unicode White_Space and str.isspace)
WHITESPACE = sorted(
    {chr(c) for c in range(0x3001) if chr(c).isspace()}
    | set("\u0085\u00a0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000")
)


def stored_by_pydantic(topic: str, value: bytes) -> dict[str, Any] | None:
    """The row the pydantic path stores (without topic/partition/offset), or None if rejected."""
    try:
        envelope, data = decode(value, topic=topic)
    except EventRejected:
        return None
    event = StoredEvent(envelope=envelope, data=data, topic=topic, partition=0, offset=0)
    ((table, rows),) = warehouse.rows_by_table([event]).items()
    values = dict(zip(warehouse.COLUMNS[table], rows[0], strict=True))
    values["event_id"] = str(values["event_id"])
    return _comparable(values)


def stored_by_columnar(topic: str, value: bytes) -> dict[str, Any] | None:
    row = columns.accepts(value, topic=topic)
    return None if row is None else _comparable(row)


def _comparable(row: dict[str, Any]) -> dict[str, Any]:
    """Stored values as compared: time as epoch ms (the column is DateTime64(3)), money as
    Decimal by value, without where the row came from."""
    out = {k: v for k, v in row.items() if not k.startswith("_")}
    at = out["occurred_at"]
    out["occurred_at"] = (at - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(
        milliseconds=1
    )
    return out


def record(topic: str, value: bytes | None, offset: int = 0) -> SimpleNamespace:
    return SimpleNamespace(topic=topic, value=value, key=b"k", partition=1, offset=offset)


def good(topic: str, n: int) -> list[bytes]:
    """``n`` canonical messages of ``topic`` with distinct event_ids."""
    event_type, base = BASE[topic]
    docs = [envelope(event_type, base, event_id=f"{EID[:-4]}{k:04x}") for k in range(n)]
    return [json.dumps(doc).encode() for doc in docs]


def in_a_batch(topic: str, value: bytes) -> tuple[bool, list[int]]:
    """Whether ``value`` was accepted in the middle of a batch of good messages, and the
    offsets of the rows stored."""
    values = good(topic, 6)
    values.insert(3, value)
    batch = columns.split([record(topic, v, n) for n, v in enumerate(values)])
    unusual = [r.offset for r in batch.unusual]
    assert unusual in ([], [3])
    (rows,) = batch.tables.values()
    return not unusual, rows.table.column("_offset").to_pylist()


@pytest.mark.parametrize(("topic", "value"), CANONICAL)
def test_canonical_messages_are_accepted_by_both_with_the_same_stored_values(
    topic: str, value: bytes
) -> None:
    pydantic_row = stored_by_pydantic(topic, value)
    assert pydantic_row is not None
    assert stored_by_columnar(topic, value) == pydantic_row
    assert in_a_batch(topic, value) == (True, [0, 1, 2, 3, 4, 5, 6])


@pytest.mark.parametrize(("topic", "value"), MALFORMED)
def test_malformed_messages_are_rejected_by_both(topic: str, value: bytes) -> None:
    assert stored_by_pydantic(topic, value) is None
    assert columns.accepts(value, topic=topic) is None
    assert in_a_batch(topic, value) == (False, [0, 1, 2, 4, 5, 6])


@pytest.mark.parametrize(("topic", "value"), UNUSUAL_BUT_VALID)
def test_unusual_but_valid_messages_are_left_to_the_pydantic_gate(topic: str, value: bytes) -> None:
    pydantic_row = stored_by_pydantic(topic, value)
    assert pydantic_row is not None
    accepted = stored_by_columnar(topic, value)
    if accepted is not None:  # if the bulk check takes it, it must store the same values
        assert accepted == pydantic_row
    assert in_a_batch(topic, value)[0] is (accepted is not None)


@pytest.mark.parametrize("space", WHITESPACE, ids=lambda c: f"U+{ord(c):04X}")
def test_identifiers_with_surrounding_whitespace_are_left_to_the_models(space: str) -> None:
    for campaign_id in (f"{space}c-1", f"c-1{space}"):
        value = json.dumps(envelope("spend.recorded", {**SPEND, "campaign_id": campaign_id}))
        assert columns.accepts(value.encode(), topic=topics.SPEND) is None


def test_values_that_cannot_share_a_line_are_declined_alone() -> None:
    canonical = CANONICAL[0].values[1]
    pretty = json.dumps(json.loads(canonical), indent=2).encode()
    two_objects = canonical + b" " + canonical
    carriage_return = canonical + b"\r" + canonical
    odd = [pretty, b"", None, two_objects, carriage_return, b"\n" + canonical]
    values = good(topics.SPEND, 8)
    mixed = [*values[:2], *odd[:3], *values[2:5], *odd[3:], *values[5:]]
    batch = columns.split([record(topics.SPEND, v, n) for n, v in enumerate(mixed)])
    assert [r.value for r in batch.unusual] == odd
    rows = batch.tables["spend"]
    assert rows.table.column("_offset").to_pylist() == [0, 1, 5, 6, 7, 11, 12, 13]
    assert [r.value for r in rows.records] == values
    assert stored_by_pydantic(topics.SPEND, pretty) is not None  # valid, left to the gate


def test_split_builds_arrow_tables_and_leaves_the_rest_to_the_gate() -> None:
    leads = [
        envelope("lead.stage_changed", {**LEAD, **changes})
        for changes in (
            {},
            {"stage": "lost", "customer_id": None},
            {"stage": "opportunity", "expected_value": "1500.5"},
            {"lead_id": "x" * 128},
        )
    ]
    good_leads = [record(topics.LEADS, json.dumps(doc).encode(), n) for n, doc in enumerate(leads)]
    no_customer = envelope("lead.stage_changed", {**LEAD, "customer_id": None})
    bad = record(topics.LEADS, json.dumps(no_customer).encode(), 99)
    planning = record(topics.PLANNING, b"{}", 100)
    spend = record(topics.SPEND, CANONICAL[0].values[1], 101)
    batch = columns.split([good_leads[0], bad, *good_leads[1:], planning, spend])
    assert batch.unusual == [bad, planning]
    table = columns.to_arrow_tables(batch)["lead_events"]
    assert table.num_rows == 4 and table.schema == columns.SCHEMAS["lead_events"]
    assert table.column("_offset").to_pylist() == [0, 1, 2, 3]
    assert table.column("_partition").to_pylist() == [1, 1, 1, 1]
    assert table.column("_topic").to_pylist() == [topics.LEADS] * 4
    assert table.column("stage_rank").to_pylist() == [6, -1, 5, 6]
    assert table.column("expected_value").to_pylist()[2] == Decimal("1500.50")
    assert columns.to_arrow_tables(batch)["spend"].column("_offset").to_pylist() == [101]
    assert batch.campaign_ids() == {"c-1"}
    assert batch.campaign_ids(tables=("sales",)) == set()


def test_duplicates_stay_columnar_and_are_stored_as_delivered() -> None:
    value = CANONICAL[0].values[1]
    batch = columns.split([record(topics.SPEND, value, n) for n in range(3)])
    assert batch.unusual == []
    table = batch.tables["spend"].table
    assert table.column("event_id").to_pylist() == [EID] * 3  # the tables collapse them
    assert table.column("_offset").to_pylist() == [0, 1, 2]


def test_an_impossible_date_is_declined_alone() -> None:
    values = good(topics.SPEND, 3)
    feb30 = values[1].replace(b"2027-03-10", b"2027-02-30")
    batch = columns.split(
        [record(topics.SPEND, v, n) for n, v in enumerate([values[0], feb30, values[2]])]
    )
    assert [r.offset for r in batch.unusual] == [1]
    assert batch.tables["spend"].table.column("_offset").to_pylist() == [0, 2]


def test_a_batch_decodes_each_value_as_alone() -> None:
    values = [p.values[1] for p in (*CANONICAL, *MALFORMED, *UNUSUAL_BUT_VALID)]
    topic_of = [p.values[0] for p in (*CANONICAL, *MALFORMED, *UNUSUAL_BUT_VALID)]
    for topic in BASE:
        mine = [v for v, t in zip(values, topic_of, strict=True) if t == topic]
        decoded = batch_check.decode_batch(mine, topic=topic)
        alone = [n for n, v in enumerate(mine) if columns.accepts(v, topic=topic) is not None]
        assert decoded.accepted.tolist() == alone
        assert decoded.declined == [n for n in range(len(mine)) if n not in alone]


def test_other_currencies_are_left_to_the_domain() -> None:
    eur = record(topics.SPEND, CANONICAL[0].values[1].replace(b'"USD"', b'"EUR"'), 1)
    jpy = record(topics.SPEND, CANONICAL[0].values[1].replace(b'"USD"', b'"JPY"'), 2)
    usd = record(topics.SPEND, CANONICAL[0].values[1], 3)
    gbp_campaign = record(topics.SPEND, CANONICAL[0].values[1].replace(b'"c-1"', b'"c-2"'), 4)
    batch = columns.split([eur, jpy, usd, gbp_campaign])
    fx = FxRates(base="USD", rates={"EUR": Decimal("1.10")})
    foreign = columns.foreign_currency(batch, currencies={"c-2": "GBP"}, fx=fx)
    assert foreign == [eur, jpy, gbp_campaign]
    spend = batch.tables["spend"]
    assert spend.records == [usd] and spend.table.column("_offset").to_pylist() == [3]
    # what the handler does with them: the domain converts or rejects each one
    _, data = decode(eur.value, topic=topics.SPEND)
    converted = domain.in_campaign_currency(data, campaign_currency=None, fx=fx)
    assert (converted.amount, converted.currency) == (Decimal("13.75"), "USD")  # type: ignore[attr-defined]


def test_a_sale_in_another_currency_converts_its_list_price_too() -> None:
    doc = envelope("sale.completed", {**SALE, **SALE_UNITS, "amount": "99.99"})
    _, data = decode(json.dumps(doc).encode(), topic=topics.SALES)
    fx = FxRates(base="USD", rates={"EUR": Decimal("1.10")})
    converted = domain.in_campaign_currency(data, campaign_currency=None, fx=fx)
    assert converted.amount == Decimal("109.99") and converted.list_price == Decimal("132.00")  # type: ignore[attr-defined]
    assert converted.currency == "USD"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"list_price": "99.99"}, "data.list_price: Value error, must not be less than amount"),
        ({"partner_id": "p\x00"}, "data.partner_id: Value error, must not contain NUL"),
        ({"region": "r" * 201}, "data.region: String should have at most 200 characters"),
        ({"outlet": "o" * 201}, "data.outlet: String should have at most 200 characters"),
        ({"discount_reason": ""}, "data.discount_reason: String should have at least 1"),
        ({"sale_kind": "resale"}, "data.sale_kind: Input should be 'sell_in' or 'sell_out'"),
    ],
)
def test_the_dlq_reason_names_the_sale_field(changes: dict[str, Any], reason: str) -> None:
    doc = envelope("sale.completed", {**SALE, **changes})
    with pytest.raises(EventRejected) as rejected:
        decode(json.dumps(doc).encode(), topic=topics.SALES)
    assert rejected.value.reason.startswith(reason)


def test_a_batch_entirely_in_another_currency_leaves_no_table() -> None:
    eur = record(topics.SPEND, CANONICAL[0].values[1].replace(b'"USD"', b'"EUR"'), 1)
    batch = columns.split([eur])
    fx = FxRates(base="USD", rates={})
    assert columns.foreign_currency(batch, currencies={}, fx=fx) == [eur]
    assert columns.to_arrow_tables(batch) == {}


def test_event_ids_are_stored_in_canonical_form() -> None:
    value = json.dumps(envelope("spend.recorded", SPEND, event_id=EID.upper())).encode()
    assert stored_by_columnar(topics.SPEND, value)["event_id"] == EID  # type: ignore[index]


def test_a_batch_longer_than_a_parse_segment_keeps_every_good_row_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batch_check, "_SEGMENT", 4)
    values = good(topics.SPEND, 11)
    for n in (3, 4, 10):  # both sides of a segment boundary, and the last value
        values[n] = b'{"event_id": '
    decoded = batch_check.decode_batch(values, topic=topics.SPEND)
    assert decoded.declined == [3, 4, 10]
    assert decoded.accepted.tolist() == [0, 1, 2, 5, 6, 7, 8, 9]
    assert decoded.table.column("event_id").to_pylist() == [
        f"{EID[:-4]}{k:04x}" for k in (0, 1, 2, 5, 6, 7, 8, 9)
    ]
