"""Batch decoding of the ingest topics: raw Kafka values → one validated Arrow table per batch.

The hot path of ingestion (STYLE rule 14). The values of a batch are joined into one
newline-delimited buffer and parsed at once by ``pyarrow.json`` with the fixed schema of the
topic's envelope and payload (unknown fields and wrong JSON types fail the parse), then checked
column by column with ``pyarrow.compute`` against the same contract as the pydantic models in
``shared.events.ingest``: required fields, lengths, enums, ranges, ``clicks ≤ impressions``,
``customer_id`` with stage ``customer``, ``list_price ≥ amount``, two-decimal money, ISO currency,
aware RFC 3339 ``occurred_at``, UUID ``event_id``.

The check is deliberately *conservative*: it accepts only the canonical forms our own publishers
write (money as a decimal string, RFC 3339 timestamps, hyphenated UUIDs, identifiers that start
and end with a printable ASCII character, every optional field present or explicitly null).
Whatever it does not accept — malformed or merely unusual — is *declined*: the caller decodes
those values one by one with ``shared.events.decode``, so the pydantic models stay the one
authority on what is valid and on the DLQ reason. A value that breaks the parse of its batch is
found from the parser's row number (or by halving the batch) and declined alone; the rest of
the batch stays columnar. ``tests/measurement/unit/test_measurement_columnar.py`` pins that the
two paths agree.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import get_args

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from shared import topics
from shared.events.envelope import (
    EARLIEST_DATE,
    LATEST_DATE,
    MAX_COUNT,
    MAX_IDENTIFIER,
    MAX_NAME,
    MAX_SHORT_TEXT,
    MAX_TEXT,
    SUPPORTED_SCHEMA_VERSIONS,
    iso_currencies,
)
from shared.events.ingest import LeadStage, SaleKind, TaskStatus

MONEY = pa.decimal128(18, 2)
TIMESTAMP = pa.timestamp("ms", tz="UTC")
_MICROS = pa.timestamp("us", tz="UTC")

_S = pa.string()
_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# a year from 1970 (no negative epoch times), offsets within ±23:59, at most microseconds
_RFC3339 = (
    r"^(19[7-9]\d|[2-9]\d{3})-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)
_MONEY = r"^\d{1,16}(\.\d{1,2})?$"
_EARLIEST = pa.scalar(dt.datetime.combine(EARLIEST_DATE, dt.time(), dt.UTC), _MICROS)
_AFTER_LATEST = pa.scalar(
    dt.datetime.combine(LATEST_DATE + dt.timedelta(days=1), dt.time(), dt.UTC), _MICROS
)
_CURRENCIES = pa.array(sorted(iso_currencies()), _S)
_VERSIONS = pa.array(sorted(SUPPORTED_SCHEMA_VERSIONS), pa.int64())
_ROW = re.compile(r" in row (\d+)$")
_OPEN_BRACE = ord("{")
_SEGMENT = 2048
_NEWLINE = ord("\n")


def _field_types(**types: pa.DataType) -> list[tuple[str, pa.DataType]]:
    return list(types.items())


_PAYLOADS: dict[str, list[tuple[str, pa.DataType]]] = {
    topics.SPEND: _field_types(campaign_id=_S, channel=_S, amount=_S, currency=_S),
    topics.AD_METRICS: _field_types(
        campaign_id=_S, channel=_S, impressions=pa.uint64(), clicks=pa.uint64()
    ),
    topics.LEADS: _field_types(
        lead_id=_S, campaign_id=_S, channel=_S, stage=_S, customer_id=_S, expected_value=_S
    ),
    topics.SALES: _field_types(
        order_id=_S,
        customer_id=_S,
        campaign_id=_S,
        channel=_S,
        amount=_S,
        discount_amount=_S,
        currency=_S,
        partner_id=_S,
        rep_id=_S,
        region=_S,
        product_id=_S,
        brand=_S,
        list_price=_S,
        discount_reason=_S,
        sale_kind=_S,
        outlet=_S,
    ),
    topics.TASKS: _field_types(campaign_id=_S, stage_id=_S, status=_S, assignee=_S, comment=_S),
}

JSON_SCHEMAS: dict[str, pa.Schema] = {
    topic: pa.schema(
        [
            ("event_id", _S),
            ("event_type", _S),
            ("occurred_at", _S),
            ("source", _S),
            ("schema_version", pa.int64()),
            ("data", pa.struct(payload)),
        ]
    )
    for topic, payload in _PAYLOADS.items()
}
"""The wire layout of every ingest topic's envelope, as ``pyarrow.json`` parses it."""

EVENT_TYPES: dict[str, str] = {
    topics.SPEND: "spend.recorded",
    topics.AD_METRICS: "ad.metrics_reported",
    topics.LEADS: "lead.stage_changed",
    topics.SALES: "sale.completed",
    topics.TASKS: "task.status_changed",
}
"""Ingest topic → the one event type it carries."""


@dataclass(frozen=True)
class DecodedBatch:
    """The accepted values of a batch as columns, and the positions of the declined ones."""

    table: pa.Table
    """event_id (lower-case), occurred_at (UTC ms), source, then the payload fields as the
    models hold them: identifiers and enums as text, channel lower-cased, money as
    decimal128(18, 2), counts as uint64, absent optional values null."""
    accepted: np.ndarray
    """Position in the input of each row of ``table``."""
    declined: list[int]
    """Positions of the values left to the pydantic gate, ascending."""


# --------------------------------------------------------------------------------------------
# parsing: one pyarrow.json call per batch; a value that breaks it is declined alone
# --------------------------------------------------------------------------------------------


class _ParseFailed(ValueError):
    """The segment did not parse into one row per value; ``row`` is the parser's hint."""

    def __init__(self, row: int | None) -> None:
        super().__init__(row)
        self.row = row


def _parse(values: Sequence[bytes], schema: pa.Schema) -> pa.Table:
    joined = b"\n".join(values)
    buffer = np.frombuffer(joined, dtype=np.uint8)
    newlines = np.flatnonzero(buffer == _NEWLINE)
    starts = np.concatenate(([0], newlines + 1))
    # one line per value, each an object: then "as many rows as values" means one row each
    # (an empty or blank line would parse to no row, two objects on a line to two)
    if len(newlines) != len(values) - 1 or starts[-1] >= len(buffer):
        raise _ParseFailed(None)
    if not (buffer[starts] == _OPEN_BRACE).all():
        raise _ParseFailed(None)
    try:
        table = pj.read_json(
            pa.BufferReader(joined),
            read_options=pj.ReadOptions(use_threads=False, block_size=len(joined) + 1),
            parse_options=pj.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="error"
            ),
        )
        table.validate(full=True)  # the reader does not check UTF-8
    except pa.ArrowInvalid as exc:
        hint = _ROW.search(str(exc))
        raise _ParseFailed(int(hint.group(1)) if hint else None) from None
    if table.num_rows != len(values):
        raise _ParseFailed(None)
    return table


def _unsafe(value: bytes | None) -> bool:
    """A value that cannot share a newline-delimited buffer (checked only when one broke it)."""
    return not value or b"\n" in value or value[0] != _OPEN_BRACE


def _parse_all(
    values: Sequence[bytes | None], schema: pa.Schema
) -> tuple[list[pa.Table], list[np.ndarray], list[int]]:
    """Parse ``values`` in as few segments as the bad ones allow."""
    parsed: list[tuple[int, pa.Table, np.ndarray]] = []
    declined: list[int] = []
    # bounded segments: a value that breaks the parse costs a second parse of its segment only
    # (2048 values: ~20 % less than 4096 for a batch with bad JSON, the same when clean), and
    # the reader slows down on very large single blocks
    pending = [
        (start, min(start + _SEGMENT, len(values))) for start in range(0, len(values), _SEGMENT)
    ]
    while pending:
        start, stop = pending.pop()
        if start >= stop:
            continue
        segment = values[start:stop]
        try:
            parsed.append((start, _parse(segment, schema), np.arange(start, stop)))  # type: ignore[arg-type]
            continue
        except TypeError:  # a None value (tombstone) cannot be joined
            row = None
        except _ParseFailed as exc:
            row = exc.row
        if stop - start == 1:
            declined.append(start)
        elif row is None:
            unsafe = [start + i for i, value in enumerate(segment) if _unsafe(value)]
            if unsafe:
                declined.extend(unsafe)
                bounds = [start - 1, *unsafe, stop]
                pending.extend((a + 1, b) for a, b in pairwise(bounds))
            else:
                middle = (start + stop) // 2
                pending.extend(((start, middle), (middle, stop)))
        elif 0 <= row < stop - start:
            declined.append(start + row)
            pending.extend(((start, start + row), (start + row + 1, stop)))
        else:
            middle = (start + stop) // 2
            pending.extend(((start, middle), (middle, stop)))
    parsed.sort(key=lambda item: item[0])  # segments come off the stack out of order
    return [table for _, table, _ in parsed], [at for _, _, at in parsed], sorted(declined)


# --------------------------------------------------------------------------------------------
# vectorised checks: each returns the normalised column and a mask of the rows it accepts
# --------------------------------------------------------------------------------------------

Checked = tuple[pa.Array, pa.Array]


def _matches(values: pa.Array, pattern: str, *, unique: bool = True) -> pa.Array:
    """Which values match ``pattern`` (null: no). A regex costs ~0.1 µs a value, so by default
    it runs once per distinct value (campaigns, channels, amounts, times repeat in a batch)."""
    if not unique:
        return pc.fill_null(pc.match_substring_regex(values, pattern), False)
    encoded = pc.dictionary_encode(values)
    ok = pc.match_substring_regex(encoded.dictionary, pattern)
    return pc.fill_null(pc.take(ok, encoded.indices), False)


def _length_within(values: pa.Array, low: int, high: int) -> pa.Array:
    """Lengths within [low, high] and no NUL character (the stores' text bound)."""
    length = pc.utf8_length(values)
    within = pc.and_(pc.greater_equal(length, low), pc.less_equal(length, high))
    return pc.fill_null(pc.and_(within, pc.invert(pc.match_substring(values, "\x00"))), False)


def _optional(values: pa.Array, ok: pa.Array) -> pa.Array:
    return pc.or_(pc.is_null(values), pc.fill_null(ok, False))


def _identifier(
    values: pa.Array, *, optional: bool = False, max_length: int = MAX_IDENTIFIER
) -> Checked:
    # no surrounding whitespace: the models strip it, so such values are left to them (Arrow's
    # trim removes every Unicode White_Space character that pydantic's strip does, and more)
    trimmed = pc.fill_null(pc.equal(values, pc.utf8_trim_whitespace(values)), False)
    ok = pc.and_(trimmed, _length_within(values, 1, max_length))
    return values, _optional(values, ok) if optional else ok


def _channel(values: pa.Array, *, optional: bool = False) -> Checked:
    ascii_ = pc.fill_null(pc.string_is_ascii(values), False)
    _, ok = _identifier(values, max_length=64)
    ok = pc.and_(ok, ascii_)
    return pc.ascii_lower(values), _optional(values, ok) if optional else ok


def _money(values: pa.Array, *, optional: bool = False) -> Checked:
    ok = _matches(values, _MONEY)
    text = pc.if_else(ok, values, pa.scalar(None, _S))  # cast only what the pattern admits
    amounts = pc.cast(text, MONEY)
    return amounts, _optional(values, ok) if optional else ok


def _enum(values: pa.Array, allowed: tuple[str, ...], *, optional: bool = False) -> Checked:
    ok = pc.fill_null(pc.is_in(values, value_set=pa.array(allowed, _S)), False)
    return values, _optional(values, ok) if optional else ok


def _count(values: pa.Array) -> Checked:
    # uint64 already (non-negative); bounded like the models so sums stay in range
    return values, pc.fill_null(pc.less_equal(values, pa.scalar(MAX_COUNT, pa.uint64())), False)


def _currency(values: pa.Array) -> Checked:
    return values, pc.fill_null(pc.is_in(values, value_set=_CURRENCIES), False)


def _occurred_at(values: pa.Array) -> Checked:
    """RFC 3339 text → UTC milliseconds (truncated, as the stored DateTime64(3))."""
    encoded = pc.dictionary_encode(values)  # timestamps repeat within a batch: parse each once
    texts = encoded.dictionary
    well_formed = pc.match_substring_regex(texts, _RFC3339)
    texts = pc.if_else(well_formed, texts, pa.scalar(None, _S))
    try:
        parsed = pc.cast(texts, _MICROS)
    except pa.ArrowInvalid:  # a well-formed but impossible date (e.g. 30 February)
        parsed = pa.array([_micros_or_none(text) for text in texts.to_pylist()], _MICROS)
    micros = pc.take(parsed, encoded.indices)
    in_range = pc.and_(pc.greater_equal(micros, _EARLIEST), pc.less(micros, _AFTER_LATEST))
    return pc.cast(micros, TIMESTAMP, safe=False), pc.fill_null(in_range, False)


def _micros_or_none(text: str | None) -> pa.Scalar | None:
    try:
        return pc.cast(pa.array([text], _S), _MICROS)[0]
    except pa.ArrowInvalid:
        return None


_LEAD_STAGES: tuple[str, ...] = get_args(LeadStage)
_TASK_STATUSES: tuple[str, ...] = get_args(TaskStatus)
_SALE_KINDS: tuple[str, ...] = get_args(SaleKind)

PayloadCheck = Callable[[dict[str, pa.Array]], tuple[dict[str, pa.Array], list[pa.Array]]]


def _spend(d: dict[str, pa.Array]) -> tuple[dict[str, pa.Array], list[pa.Array]]:
    return _checked(
        campaign_id=_identifier(d["campaign_id"]),
        channel=_channel(d["channel"]),
        amount=_money(d["amount"]),
        currency=_currency(d["currency"]),
    )


def _ad_metrics(d: dict[str, pa.Array]) -> tuple[dict[str, pa.Array], list[pa.Array]]:
    columns, masks = _checked(
        campaign_id=_identifier(d["campaign_id"]),
        channel=_channel(d["channel"]),
        impressions=_count(d["impressions"]),
        clicks=_count(d["clicks"]),
    )
    masks.append(pc.fill_null(pc.less_equal(d["clicks"], d["impressions"]), False))
    return columns, masks


def _lead(d: dict[str, pa.Array]) -> tuple[dict[str, pa.Array], list[pa.Array]]:
    columns, masks = _checked(
        lead_id=_identifier(d["lead_id"]),
        campaign_id=_identifier(d["campaign_id"], optional=True),
        channel=_channel(d["channel"]),
        stage=_enum(d["stage"], _LEAD_STAGES),
        customer_id=_identifier(d["customer_id"], optional=True),
        expected_value=_money(d["expected_value"], optional=True),
    )
    is_customer = pc.fill_null(pc.equal(d["stage"], "customer"), False)
    masks.append(pc.or_(pc.invert(is_customer), pc.is_valid(d["customer_id"])))
    return columns, masks


def _sale(d: dict[str, pa.Array]) -> tuple[dict[str, pa.Array], list[pa.Array]]:
    # discount_amount: absent means 0 but null is invalid, and the parser cannot tell the two
    # apart, so a null one is declined (the models decide)
    reason = d["discount_reason"]
    columns, masks = _checked(
        order_id=_identifier(d["order_id"]),
        customer_id=_identifier(d["customer_id"]),
        campaign_id=_identifier(d["campaign_id"], optional=True),
        channel=_channel(d["channel"], optional=True),
        amount=_money(d["amount"]),
        discount_amount=_money(d["discount_amount"]),
        currency=_currency(d["currency"]),
        partner_id=_identifier(d["partner_id"], optional=True),
        rep_id=_identifier(d["rep_id"], optional=True),
        region=_identifier(d["region"], optional=True, max_length=MAX_NAME),
        product_id=_identifier(d["product_id"], optional=True),
        brand=_identifier(d["brand"], optional=True, max_length=MAX_NAME),
        list_price=_money(d["list_price"], optional=True),
        discount_reason=(reason, _optional(reason, _length_within(reason, 1, MAX_SHORT_TEXT))),
        sale_kind=_enum(d["sale_kind"], _SALE_KINDS, optional=True),
        outlet=_identifier(d["outlet"], optional=True, max_length=MAX_NAME),
    )
    list_price = d["list_price"]
    covers = pc.greater_equal(columns["list_price"], columns["amount"])
    masks.append(_optional(list_price, covers))
    return columns, masks


def _task(d: dict[str, pa.Array]) -> tuple[dict[str, pa.Array], list[pa.Array]]:
    comment = d["comment"]
    return _checked(
        campaign_id=_identifier(d["campaign_id"]),
        stage_id=_identifier(d["stage_id"]),
        status=_enum(d["status"], _TASK_STATUSES),
        assignee=_identifier(d["assignee"], optional=True),
        comment=(comment, _optional(comment, _length_within(comment, 0, MAX_TEXT))),
    )


def _checked(**fields: Checked) -> tuple[dict[str, pa.Array], list[pa.Array]]:
    return {name: column for name, (column, _) in fields.items()}, [ok for _, ok in fields.values()]


_PAYLOAD_CHECKS: dict[str, PayloadCheck] = {
    topics.SPEND: _spend,
    topics.AD_METRICS: _ad_metrics,
    topics.LEADS: _lead,
    topics.SALES: _sale,
    topics.TASKS: _task,
}


def _validate(table: pa.Table, topic: str) -> tuple[pa.Table, pa.Array]:
    """The normalised columns of ``table`` and the mask of the rows that pass every check."""
    env = {name: table.column(name).combine_chunks() for name in table.column_names}
    data = env.pop("data")
    # flatten() merges the struct's own nulls into its fields
    payload = {field.name: column for field, column in zip(data.type, data.flatten(), strict=True)}
    event_id = env["event_id"]
    occurred_at, time_ok = _occurred_at(env["occurred_at"])
    masks = [
        pc.is_valid(data),
        _matches(event_id, _UUID, unique=False),  # event_ids are distinct
        pc.fill_null(pc.equal(env["event_type"], EVENT_TYPES[topic]), False),
        time_ok,
        _length_within(env["source"], 1, MAX_SHORT_TEXT),
        # schema_version: absent means 1 but null is invalid, as for discount_amount
        pc.fill_null(pc.is_in(env["schema_version"], value_set=_VERSIONS), False),
    ]
    columns, payload_masks = _PAYLOAD_CHECKS[topic](payload)
    ok = masks[0]
    for mask in (*masks[1:], *payload_masks):
        ok = pc.and_(ok, mask)
    out = {
        "event_id": pc.ascii_lower(event_id),
        "occurred_at": occurred_at,
        "source": env["source"],
        **columns,
    }
    return pa.table(out), ok


def decode_batch(values: Sequence[bytes | None], *, topic: str) -> DecodedBatch:
    """Parse and check the raw values of one ingest topic at once; decline what needs pydantic."""
    schema = JSON_SCHEMAS[topic]
    tables, positions, declined = _parse_all(values, schema)
    if not tables:
        return DecodedBatch(_empty(topic), np.zeros(0, dtype=np.int64), declined)
    parsed = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    at = np.concatenate(positions) if len(positions) > 1 else positions[0]
    table, ok = _validate(parsed, topic)
    keep = ok.to_numpy(zero_copy_only=False)
    if not keep.all():
        declined = sorted([*declined, *at[~keep].tolist()])
        table, at = table.filter(ok), at[keep]
    return DecodedBatch(table, at, declined)


def _empty(topic: str) -> pa.Table:
    return _validate(JSON_SCHEMAS[topic].empty_table(), topic)[0]
