"""Rule-based segment definitions and customer profile history in the warehouse (migration 12).

``segment_definitions`` holds every version of every definition, one row per version; removal
is a tombstone row (``removed = 1``). Two measurement replicas sharing one ClickHouse agree on
the current state without a lock: a writer inserts version ``v + 1`` with the insert
deduplication token ``<segment_id>:<v + 1>``, so ClickHouse keeps the first insert of a version
that commits and drops any later one (the table keeps the tokens of its last
``DEDUP_WINDOW`` inserts); the writer then reads the version back and has won only if the
stored row is its own (``write_id``) — the loser is told so (HTTP 409). A timestamp could not
decide this: ``now64()`` is taken when an insert starts, not when it becomes visible.

``customer_profile_versions`` keeps every version of every profile (``customer_profiles`` keeps
only the latest): a materialized view copies each insert into it, and the migration backfills
the versions ``customer_profiles`` still holds. Membership "as of" a day reads the highest
version published before the day's end.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.client import Client

_PROFILE_COLUMNS = "customer_id, version, industry, size, region, age_band, attributes, updated_at"

DEDUP_WINDOW = 10_000
"""How many recent inserts' deduplication tokens ``segment_definitions`` remembers."""

MIGRATION: tuple[str, ...] = (
    f"""CREATE TABLE IF NOT EXISTS {{db}}.segment_definitions (
        segment_id String, version UInt64, write_id UUID, name String, description String,
        rule String, rfm_days UInt32, removed UInt8, author String,
        written_at DateTime64(6, 'UTC') DEFAULT now64(6, 'UTC')
    ) ENGINE = ReplacingMergeTree ORDER BY (segment_id, version, write_id)
    SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}""",
    """CREATE TABLE IF NOT EXISTS {db}.customer_profile_versions (
        customer_id String, version UInt64, industry String, size LowCardinality(String),
        region String, age_band LowCardinality(String), attributes Map(String, String),
        updated_at DateTime64(3, 'UTC')
    ) ENGINE = ReplacingMergeTree ORDER BY (customer_id, version)""",
    f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.customer_profile_versions_mv
    TO {{db}}.customer_profile_versions AS
    SELECT {_PROFILE_COLUMNS} FROM {{db}}.customer_profiles""",
    f"""INSERT INTO {{db}}.customer_profile_versions
    SELECT {_PROFILE_COLUMNS} FROM {{db}}.customer_profiles""",
)
"""DDL of migration 12 of ``schema.MIGRATIONS``."""

_COLUMNS = [
    "segment_id",
    "version",
    "write_id",
    "name",
    "description",
    "rule",
    "rfm_days",
    "removed",
    "author",
]


@dataclass(frozen=True)
class StoredDefinition:
    """One version of a definition as stored (``rule`` as its JSON object)."""

    segment_id: str
    version: int
    name: str
    description: str
    rule: dict[str, Any]
    rfm_days: int
    removed: bool
    author: str
    written_at: dt.datetime


_SELECT = """SELECT segment_id, version, name, description, rule, rfm_days, removed, author,
        written_at
    FROM segment_definitions {where}
    ORDER BY segment_id, version DESC, written_at, write_id
    LIMIT 1 BY segment_id"""


def _definitions(rows: Sequence[Sequence[Any]]) -> list[StoredDefinition]:
    return [
        StoredDefinition(
            segment_id=str(sid),
            version=int(version),
            name=str(name),
            description=str(description),
            rule=json.loads(str(rule)),
            rfm_days=int(days),
            removed=bool(removed),
            author=str(author),
            written_at=at if at.tzinfo else at.replace(tzinfo=dt.UTC),
        )
        for sid, version, name, description, rule, days, removed, author, at in rows
    ]


def latest(
    client: Client, *, segment_id: str, version: int | None = None
) -> StoredDefinition | None:
    """The current version of a definition (a tombstone included), or the given ``version``;
    ``None`` if never written."""
    where = "WHERE segment_id = {sid:String}"
    if version is not None:
        where += " AND version = {v:UInt64}"
    sql = _SELECT.format(where=where)
    params = {"sid": segment_id, "v": version or 0}
    found = _definitions(client.query(sql, parameters=params).result_rows)
    return found[0] if found else None


def current(client: Client) -> list[StoredDefinition]:
    """The current version of every definition not removed, by segment_id."""
    rows = client.query(_SELECT.format(where="")).result_rows
    return [d for d in _definitions(rows) if not d.removed]


def write(
    client: Client,
    *,
    segment_id: str,
    version: int,
    name: str = "",
    description: str = "",
    rule: dict[str, Any] | None = None,
    rfm_days: int = 0,
    removed: bool = False,
    author: str,
) -> bool:
    """Write ``version`` of a definition; ``True`` if this write stands, ``False`` if another
    write of that version committed first (this one was dropped)."""
    write_id = uuid.uuid4()
    row = [
        segment_id,
        version,
        write_id,
        name,
        description,
        json.dumps(rule or {}, sort_keys=True),
        rfm_days,
        int(removed),
        author,
    ]
    client.insert(
        "segment_definitions",
        [row],
        column_names=_COLUMNS,
        settings={"insert_deduplicate": 1, "insert_deduplication_token": f"{segment_id}:{version}"},
    )
    first = client.query(
        """SELECT write_id FROM segment_definitions
        WHERE segment_id = {sid:String} AND version = {v:UInt64}
        ORDER BY written_at, write_id LIMIT 1""",
        parameters={"sid": segment_id, "v": version},
    ).result_rows
    return bool(first) and first[0][0] == write_id
