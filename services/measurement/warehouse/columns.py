"""Insert columns of the raw-stream tables: a batch of Kafka records → one Arrow table per table.

The hot path (STYLE rule 14), the columnar twin of ``writes.rows_by_table``. The records of
each ingest topic in a batch are decoded and validated at once by
``shared.events.columnar.decode_batch`` (the event contract, which knows no tables); this module
adds where each row came from (``_topic``, ``_partition``, ``_offset``), the funnel rank of lead
stages, and stores absent optional identifiers as ``''``, exactly as ``writes.rows_by_table``
does for an event decoded by pydantic. The records the batch decoder declines, and those of
other topics, stay records: the caller decodes them one by one with the pydantic gate
(``shared.events.decode``), which gives a rejected message its DLQ reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, get_args

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from services.measurement import domain
from services.measurement.warehouse.writes import COLUMNS
from shared import topics
from shared.events.columnar import MONEY, TIMESTAMP, decode_batch
from shared.events.ingest import LeadStage
from shared.money import FxRates

_META_TYPES = {
    "event_id": pa.string(),
    "occurred_at": TIMESTAMP,
    "source": pa.string(),
    "_topic": pa.string(),
    "_partition": pa.int32(),
    "_offset": pa.int64(),
}
_S = pa.string()
SCHEMAS: dict[str, pa.Schema] = {
    table: pa.schema([(name, {**_META_TYPES, **types}.get(name, _S)) for name in COLUMNS[table]])
    for table, types in {
        "spend": {"amount": MONEY},
        "ad_metrics": {"impressions": pa.uint64(), "clicks": pa.uint64()},
        "lead_events": {"stage_rank": pa.int8(), "expected_value": MONEY},
        "sales": {"amount": MONEY, "discount_amount": MONEY, "list_price": MONEY},
        "tasks": {},
    }.items()
}
"""The fixed Arrow schema of every raw-stream table, in ``writes.COLUMNS`` order."""

TABLES: dict[str, str] = {
    topics.SPEND: "spend",
    topics.AD_METRICS: "ad_metrics",
    topics.LEADS: "lead_events",
    topics.SALES: "sales",
    topics.TASKS: "tasks",
}
"""Ingest topic → its raw-stream table."""

_OPTIONAL_TEXT = (
    "campaign_id",
    "customer_id",
    "channel",
    "assignee",
    "comment",
    "partner_id",
    "rep_id",
    "region",
    "product_id",
    "brand",
    "discount_reason",
    "sale_kind",
    "outlet",
)
_STAGES = pa.array(get_args(LeadStage), _S)
_RANKS = pa.array([domain.stage_rank(stage) for stage in _STAGES.to_pylist()], pa.int8())


@dataclass
class TableRows:
    """The Arrow rows of one table and the record each row came from."""

    table: pa.Table
    records: list[Any]

    def __len__(self) -> int:
        return self.table.num_rows


@dataclass
class ColumnarBatch:
    """A batch as Arrow rows per table and the records left to the pydantic gate."""

    tables: dict[str, TableRows]
    unusual: list[Any]

    def campaign_ids(self, tables: Sequence[str] | None = None) -> set[str]:
        """Every non-empty campaign_id of the columnar rows (of ``tables``, default all)."""
        out: set[str] = set()
        for name, rows in self.tables.items():
            if tables is None or name in tables:
                out.update(pc.unique(rows.table.column("campaign_id")).to_pylist())
        out.discard("")
        return out


def split(records: Sequence[Any]) -> ColumnarBatch:
    """Decode the records of the ingest topics in bulk into Arrow rows; the rest stay records."""
    by_topic: dict[str, list[int]] = {}
    first = records[0].topic if records else None
    if all(record.topic == first for record in records):
        by_topic = {first: list(range(len(records)))} if first is not None else {}
    else:
        for n, record in enumerate(records):
            by_topic.setdefault(record.topic, []).append(n)
    tables: dict[str, TableRows] = {}
    unusual: list[int] = []
    for topic, positions in by_topic.items():
        table = TABLES.get(topic)
        if table is None:
            unusual.extend(positions)
            continue
        mine = [records[n] for n in positions] if len(positions) < len(records) else records
        decoded = decode_batch([record.value for record in mine], topic=topic)
        unusual.extend(positions[n] for n in decoded.declined)
        if len(decoded.accepted):
            tables[table] = TableRows(
                table=_stored(decoded.table, mine, decoded.accepted, topic=topic, table=table),
                records=[mine[n] for n in decoded.accepted.tolist()],
            )
    return ColumnarBatch(tables=tables, unusual=[records[n] for n in sorted(unusual)])


def _stored(
    decoded: pa.Table, records: Sequence[Any], accepted: np.ndarray, *, topic: str, table: str
) -> pa.Table:
    """The decoded columns with the record metadata, in the table's fixed schema."""
    rows = decoded.num_rows
    at = pa.array(accepted)
    columns = {name: decoded.column(name) for name in decoded.column_names}
    for name in _OPTIONAL_TEXT:
        if name in columns:
            columns[name] = pc.fill_null(columns[name], "")
    columns["_topic"] = pa.array([topic], _S).take(np.zeros(rows, dtype=np.int32))
    columns["_partition"] = pc.take(pa.array([r.partition for r in records], pa.int32()), at)
    columns["_offset"] = pc.take(pa.array([r.offset for r in records], pa.int64()), at)
    if table == "lead_events":
        columns["stage_rank"] = pc.take(_RANKS, pc.index_in(columns["stage"], value_set=_STAGES))
    schema = SCHEMAS[table]
    return pa.table([columns[f.name] for f in schema], schema=schema)


def foreign_currency(
    batch: ColumnarBatch, *, currencies: Mapping[str, str], fx: FxRates
) -> list[Any]:
    """Take out the spend and sales rows not in their campaign's currency (the default currency
    for an unknown campaign) and return their records: converting them, or rejecting them
    without a rate, is ``domain.in_campaign_currency``'s job on the pydantic path."""
    out: list[Any] = []
    keys = pa.array(list(currencies), _S)
    wanted_by_key = pa.array(list(currencies.values()), _S)
    for name in ("spend", "sales"):
        rows = batch.tables.get(name)
        if rows is None:
            continue
        table = rows.table
        wanted = pc.take(wanted_by_key, pc.index_in(table.column("campaign_id"), value_set=keys))
        wanted = pc.fill_null(wanted, fx.base)
        foreign = pc.not_equal(table.column("currency"), wanted)
        if not pc.any(foreign).as_py():
            continue
        flags = foreign.to_numpy(zero_copy_only=False)
        out.extend(record for record, flag in zip(rows.records, flags, strict=True) if flag)
        rows.records = [
            record for record, flag in zip(rows.records, flags, strict=True) if not flag
        ]
        rows.table = table.filter(pc.invert(foreign))
        if not len(rows):
            del batch.tables[name]
    return out


def to_arrow_tables(batch: ColumnarBatch) -> dict[str, pa.Table]:
    """Every non-empty table of the batch as Arrow."""
    return {name: rows.table for name, rows in batch.tables.items() if len(rows)}


def accepts(value: bytes, *, topic: str) -> dict[str, Any] | None:
    """The stored values of one message if the bulk check accepts it, else ``None`` (tests)."""
    record = _OneRecord(topic=topic, value=value)
    batch = split([record])
    if batch.unusual:
        return None
    (rows,) = batch.tables.values()
    (row,) = rows.table.to_pylist()
    return row


@dataclass(frozen=True)
class _OneRecord:
    topic: str
    value: bytes
    partition: int = 0
    offset: int = 0
