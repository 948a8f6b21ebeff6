"""Columnar decoding of the ingest topics: raw Kafka values → validated column lists → Arrow.

The hot path of measurement (STYLE rule 14). One pass over a batch parses each value with orjson
and checks it against the same contract as the pydantic models in ``shared.events`` (envelope
and payload: required fields, unknown fields, types, lengths, enums, ranges, ``clicks ≤
impressions``, ``customer_id`` with stage ``customer``, two-decimal money, ISO currency, aware
``occurred_at``, UUID ``event_id``), appending the values straight to per-table column lists.

The bulk check is deliberately *conservative*: it accepts only the canonical forms our own
publishers write (e.g. money as a decimal string or an integer, RFC 3339 timestamps, hyphenated
UUIDs, identifiers without surrounding whitespace). Whatever it does not accept — malformed or
merely unusual — is handed back to the caller, which decodes that message with the pydantic
gate (``shared.events.decode``): the models stay the one authority on what is valid and on the
DLQ reason, and the contract test in ``tests/measurement/unit`` pins that the two paths agree.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, get_args

import orjson
import pyarrow as pa

from services.measurement import domain
from services.measurement.analytics import COLUMNS
from shared import topics
from shared.events.ingest import LeadStage, TaskStatus
from shared.money import CurrencyNotConvertible, FxRates, cents

_ENVELOPE_KEYS = frozenset({"event_id", "event_type", "occurred_at", "source", "data"})
_ENVELOPE_KEYS_VERSIONED = _ENVELOPE_KEYS | {"schema_version"}
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)")
_MONEY = re.compile(r"\d{1,16}(?:\.\d{1,2})?")
_MONEY_MAX_INT = 10**16
_UINT64_MAX = 2**64
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)
_LEAD_STAGES: frozenset[str] = frozenset(get_args(LeadStage))
_TASK_STATUSES: frozenset[str] = frozenset(get_args(TaskStatus))
_RANKS = {stage: domain.stage_rank(stage) for stage in _LEAD_STAGES}

_DEC = pa.decimal128(18, 2)
_TS = pa.timestamp("ms", tz="UTC")
_META_TYPES = {
    "event_id": pa.string(),
    "occurred_at": _TS,
    "source": pa.string(),
    "_topic": pa.string(),
    "_partition": pa.int32(),
    "_offset": pa.int64(),
}
_S = pa.string()
SCHEMAS: dict[str, pa.Schema] = {
    table: pa.schema([(name, {**_META_TYPES, **types}.get(name, _S)) for name in COLUMNS[table]])
    for table, types in {
        "spend": {"amount": _DEC},
        "ad_metrics": {"impressions": pa.uint64(), "clicks": pa.uint64()},
        "lead_events": {"stage_rank": pa.int8(), "expected_value": _DEC},
        "sales": {"amount": _DEC, "discount_amount": _DEC},
        "tasks": {},
    }.items()
}
"""The fixed Arrow schema of every raw-stream table, in ``analytics.COLUMNS`` order."""


class _Unusual(ValueError):
    """The bulk check does not accept this value; the pydantic gate decides."""


def _identifier(value: Any, max_length: int = 128) -> str:
    if type(value) is not str or not 0 < len(value) <= max_length:
        raise _Unusual
    if value[0].isspace() or value[-1].isspace():
        raise _Unusual
    return value


def _optional_identifier(value: Any) -> str:
    return "" if value is None else _identifier(value)


def _channel(value: Any) -> str:
    if type(value) is not str or not value.isascii():
        raise _Unusual
    return _identifier(value, 64).lower()


def _money(value: Any) -> str:
    """A non-negative amount with ≤ 2 decimals and ≤ 16 whole digits, as a decimal string."""
    if type(value) is str:
        if _MONEY.fullmatch(value) is None:
            raise _Unusual
        return value
    if type(value) is int and 0 <= value < _MONEY_MAX_INT:
        return str(value)
    raise _Unusual


def _currency(value: Any) -> str:
    if type(value) is not str or len(value) != 3 or not value.isascii() or not value.isupper():
        raise _Unusual
    if not value.isalpha():
        raise _Unusual
    return value


def _count(value: Any) -> int:
    if type(value) is not int or not 0 <= value < _UINT64_MAX:
        raise _Unusual
    return value


def _keys(data: Any, required: frozenset[str], allowed: frozenset[str]) -> dict[str, Any]:
    if type(data) is not dict:
        raise _Unusual
    keys = data.keys()
    if not required <= keys or not keys <= allowed:
        raise _Unusual
    return data


def _fields(*required: str, optional: tuple[str, ...] = ()) -> tuple[frozenset, frozenset]:
    return frozenset(required), frozenset(required + optional)


_SPEND = _fields("campaign_id", "channel", "amount", "currency")
_AD = _fields("campaign_id", "channel", "impressions", "clicks")
_LEAD = _fields(
    "lead_id", "channel", "stage", optional=("campaign_id", "customer_id", "expected_value")
)
_SALE = _fields(
    "order_id",
    "customer_id",
    "amount",
    "currency",
    optional=("campaign_id", "channel", "discount_amount"),
)
_TASK = _fields("campaign_id", "stage_id", "status", optional=("assignee", "comment"))


def _spend(data: Any) -> tuple[Any, ...]:
    d = _keys(data, *_SPEND)
    return (
        _identifier(d["campaign_id"]),
        _channel(d["channel"]),
        _money(d["amount"]),
        _currency(d["currency"]),
    )


def _ad_metrics(data: Any) -> tuple[Any, ...]:
    d = _keys(data, *_AD)
    impressions, clicks = _count(d["impressions"]), _count(d["clicks"])
    if clicks > impressions:
        raise _Unusual
    return (_identifier(d["campaign_id"]), _channel(d["channel"]), impressions, clicks)


def _lead(data: Any) -> tuple[Any, ...]:
    d = _keys(data, *_LEAD)
    stage = d["stage"]
    if type(stage) is not str or stage not in _LEAD_STAGES:
        raise _Unusual
    customer_id = d.get("customer_id")
    if customer_id is None and stage == "customer":
        raise _Unusual
    expected = d.get("expected_value")
    return (
        _identifier(d["lead_id"]),
        _optional_identifier(d.get("campaign_id")),
        _channel(d["channel"]),
        stage,
        _RANKS[stage],
        _optional_identifier(customer_id),
        None if expected is None else _money(expected),
    )


def _sale(data: Any) -> tuple[Any, ...]:
    d = _keys(data, *_SALE)
    channel = d.get("channel")
    discount = d.get("discount_amount", 0)  # an explicit null is not the default: pydantic
    return (
        _identifier(d["order_id"]),
        _identifier(d["customer_id"]),
        _optional_identifier(d.get("campaign_id")),
        "" if channel is None else _channel(channel),
        _money(d["amount"]),
        _money(discount),
        _currency(d["currency"]),
    )


def _task(data: Any) -> tuple[Any, ...]:
    d = _keys(data, *_TASK)
    status, comment = d["status"], d.get("comment")
    if type(status) is not str or status not in _TASK_STATUSES:
        raise _Unusual
    if comment is not None and (type(comment) is not str or len(comment) > 2000):
        raise _Unusual
    return (
        _identifier(d["campaign_id"]),
        _identifier(d["stage_id"]),
        status,
        _optional_identifier(d.get("assignee")),
        comment or "",
    )


@dataclass(frozen=True)
class _Stream:
    event_type: str
    table: str
    payload: Callable[[Any], tuple[Any, ...]]


STREAMS: dict[str, _Stream] = {
    topics.SPEND: _Stream("spend.recorded", "spend", _spend),
    topics.AD_METRICS: _Stream("ad.metrics_reported", "ad_metrics", _ad_metrics),
    topics.LEADS: _Stream("lead.stage_changed", "lead_events", _lead),
    topics.SALES: _Stream("sale.completed", "sales", _sale),
    topics.TASKS: _Stream("task.status_changed", "tasks", _task),
}
"""Ingest topic → its one event type, its table and the bulk check of its payload."""


class _Times:
    """RFC 3339 text → epoch milliseconds (UTC), memoised: timestamps repeat within a batch."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def ms(self, value: Any) -> int:
        if type(value) is not str:
            raise _Unusual
        ms = self._seen.get(value)
        if ms is None:
            if _RFC3339.fullmatch(value) is None:
                raise _Unusual
            try:
                parsed = dt.datetime.fromisoformat(value)
            except ValueError:
                raise _Unusual from None
            ms = (parsed - _EPOCH) // _MS
            self._seen[value] = ms
        return ms


def envelope_row(value: bytes, *, stream: _Stream, times: _Times | None = None) -> tuple[Any, ...]:
    """The meta + payload values of one message, or ``_Unusual`` when the bulk check declines."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise _Unusual from None
    if type(doc) is not dict:
        raise _Unusual
    keys = doc.keys()
    if keys != _ENVELOPE_KEYS and keys != _ENVELOPE_KEYS_VERSIONED:
        raise _Unusual
    if doc["event_type"] != stream.event_type:
        raise _Unusual
    version = doc.get("schema_version", 1)
    if type(version) is not int or version < 1:
        raise _Unusual
    event_id, source = doc["event_id"], doc["source"]
    if type(event_id) is not str or _UUID.fullmatch(event_id) is None:
        raise _Unusual
    if type(source) is not str or not 0 < len(source) <= 100:
        raise _Unusual
    occurred_ms = (times or _Times()).ms(doc["occurred_at"])
    return (event_id.lower(), occurred_ms, source, *stream.payload(doc["data"]))


def accepts(value: bytes, *, topic: str) -> tuple[Any, ...] | None:
    """The stored values of one message if the bulk check accepts it, else ``None`` (tests)."""
    try:
        return envelope_row(value, stream=STREAMS[topic])
    except _Unusual:
        return None


@dataclass
class TableColumns:
    """Column lists of one table being filled, and which record each row came from."""

    table: str
    columns: dict[str, list[Any]]
    records: list[Any] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)


@dataclass
class ColumnarBatch:
    """A batch split into validated columns per table and the records left to the pydantic gate."""

    tables: dict[str, TableColumns]
    unusual: list[Any]

    def campaign_ids(self) -> set[str]:
        """Every non-empty campaign_id of the columnar rows."""
        out: set[str] = set()
        for columns in self.tables.values():
            out.update(columns.columns["campaign_id"])
        out.discard("")
        return out


def split(records: Sequence[Any]) -> ColumnarBatch:
    """Bulk-decode the records of the ingest topics into column lists; the rest stay records."""
    tables: dict[str, TableColumns] = {}
    unusual: list[Any] = []
    times = _Times()
    for record in records:
        stream = STREAMS.get(record.topic)
        if stream is None:
            unusual.append(record)
            continue
        try:
            row = envelope_row(record.value, stream=stream, times=times)
        except _Unusual:
            unusual.append(record)
            continue
        target = tables.get(stream.table)
        if target is None:
            names = COLUMNS[stream.table]
            target = tables[stream.table] = TableColumns(stream.table, {n: [] for n in names})
        columns = target.columns
        event_id, occurred_ms, source, *payload = row
        columns["event_id"].append(event_id)
        columns["occurred_at"].append(occurred_ms)
        columns["source"].append(source)
        columns["_topic"].append(record.topic)
        columns["_partition"].append(record.partition)
        columns["_offset"].append(record.offset)
        for name, item in zip(COLUMNS[stream.table][6:], payload, strict=True):
            columns[name].append(item)
        target.records.append(record)
    return ColumnarBatch(tables=tables, unusual=unusual)


def in_campaign_currency(
    batch: ColumnarBatch, *, currencies: Mapping[str, str], fx: FxRates
) -> list[tuple[Any, str]]:
    """Convert spend and sales rows to their campaign's currency in place (as
    ``domain.in_campaign_currency`` does for one event); drop and return those without a rate."""
    rejected: list[tuple[Any, str]] = []
    for table, money in (("spend", ("amount",)), ("sales", ("amount", "discount_amount"))):
        target = batch.tables.get(table)
        if target is None:
            continue
        cols = target.columns
        dropped: list[int] = []
        for i, (campaign_id, currency) in enumerate(
            zip(cols["campaign_id"], cols["currency"], strict=True)
        ):
            wanted = currencies.get(campaign_id) or fx.base
            if currency == wanted:
                continue
            try:
                for name in money:
                    amount = fx.convert(Decimal(cols[name][i]), source=currency, target=wanted)
                    cols[name][i] = str(cents(amount))
            except CurrencyNotConvertible as exc:
                rejected.append((target.records[i], f"data.currency: {exc}"))
                dropped.append(i)
                continue
            cols["currency"][i] = wanted
        if dropped:
            _drop(target, set(dropped))
    return rejected


def _drop(target: TableColumns, rows: set[int]) -> None:
    keep = [i for i in range(len(target)) if i not in rows]
    for name, values in target.columns.items():
        target.columns[name] = [values[i] for i in keep]
    target.records = [target.records[i] for i in keep]


def to_arrow(columns: TableColumns) -> pa.Table:
    """The table's columns as Arrow arrays of its fixed schema (money cast from decimal text)."""
    schema = SCHEMAS[columns.table]
    arrays = []
    for column in schema:
        values = columns.columns[column.name]
        if column.type == _DEC:
            arrays.append(pa.array(values, pa.string()).cast(_DEC))
        elif column.type == _TS:
            arrays.append(pa.array(values, pa.int64()).cast(_TS))
        else:
            arrays.append(pa.array(values, column.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def to_arrow_tables(batch: ColumnarBatch) -> dict[str, pa.Table]:
    """Every non-empty table of the batch as Arrow."""
    return {name: to_arrow(columns) for name, columns in batch.tables.items() if len(columns)}
