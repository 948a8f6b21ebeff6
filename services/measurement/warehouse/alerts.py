"""The target monitor's state in ClickHouse: alert states, the campaign change log, round marks.

ClickHouse has no transactions and no row locks, so the monitor's state is built to be read
and written by whichever replica leads (``shared.leadership``) without losing a change:

* ``alert_state`` — per subject (a campaign, or ``plan:<plan_id>`` for a plan's standing
  reallocation pairs) and key (a target_id, a pair), whether it is on, and the ``version`` (µs
  since the epoch) of the row that set it. The version names the episode a transition ends:
  the next transition's event id is derived from it, so two replicas deciding from the same
  stored state publish the same event id.
* ``campaign_changes`` — one row per campaign per ingested batch that touched it, stamped
  with the server's clock at insert (``changed_at``). The ingestor writes it after the batch's
  rows are stored, so a campaign whose data arrived at any replica is found by the leader.
* ``monitor_marks`` — how far each job of the monitor (evaluate, reallocate, snapshot) has
  read the change log, so a new leader continues where the previous one stopped.

A job reads the change log up to the server's clock minus ``SETTLE_MS``: a row stamped before
that bound was inserted that long ago and is visible by then (an insert of a handful of rows
takes milliseconds), so consecutive windows ``(mark, bound]`` miss no change.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

SETTLE_MS = 1000
"""How far behind the server's clock a job reads the change log (see the module docstring)."""

MIGRATION: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS {db}.campaign_changes (
        changed_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC'), campaign_id String
    ) ENGINE = MergeTree ORDER BY (changed_at, campaign_id)
    TTL toDateTime(changed_at) + INTERVAL 30 DAY""",
    """CREATE TABLE IF NOT EXISTS {db}.monitor_marks (
        job String, upto_ms Int64, version UInt64
    ) ENGINE = ReplacingMergeTree(version) ORDER BY job""",
)
"""DDL of the change log and the marks (migration 4 of ``schema.MIGRATIONS``)."""


@dataclass(frozen=True)
class AlertState:
    """A stored alert state: on or off, and the version of the row that set it."""

    on: bool
    version: int


def alert_states_of(client: Client, *, subjects: Sequence[str]) -> dict[str, dict[str, AlertState]]:
    """subject → {key → state} as last saved, for several subjects (campaigns, ``plan:<id>``)."""
    if not subjects:
        return {}
    sql = """SELECT campaign_id, target_id, breached, version FROM alert_state FINAL
        WHERE campaign_id IN {ids:Array(String)}"""
    rows = client.query(sql, parameters={"ids": list(subjects)}).result_rows
    out: dict[str, dict[str, AlertState]] = defaultdict(dict)
    for subject, key, on, version in rows:
        out[subject][key] = AlertState(on=bool(on), version=int(version))
    return dict(out)


def save_alert_states_of(
    client: Client, *, states: Mapping[str, Mapping[str, bool]], now: dt.datetime
) -> None:
    """Record the changed states of several subjects in one insert; the latest ``now`` wins."""
    version = int(now.timestamp() * 1_000_000)
    rows = [
        [subject, key, int(on), now, version]
        for subject, changed in sorted(states.items())
        for key, on in sorted(changed.items())
    ]
    if not rows:
        return
    client.insert(
        "alert_state",
        rows,
        column_names=["campaign_id", "target_id", "breached", "changed_at", "version"],
    )


def record_changes(client: Client, *, campaign_ids: Sequence[str]) -> None:
    """Note that these campaigns' data changed (stamped with the server's clock)."""
    ids = sorted({campaign_id for campaign_id in campaign_ids if campaign_id})
    if ids:
        # with the types given, clickhouse-connect skips its table-structure query: half the
        # cost of this small insert, paid once per ingested batch (~6 instead of ~12 ms, chDB)
        client.insert(
            "campaign_changes",
            [[cid] for cid in ids],
            column_names=["campaign_id"],
            column_type_names=["String"],
        )


def settled_bound(client: Client) -> int:
    """The change log's readable bound now: the server's clock minus ``SETTLE_MS``, epoch ms."""
    sql = "SELECT toUnixTimestamp64Milli(now64(3, 'UTC')) - {settle:Int64}"
    return int(client.query(sql, parameters={"settle": SETTLE_MS}).result_rows[0][0])


def changed_between(client: Client, *, after_ms: int, until_ms: int) -> list[str]:
    """Campaigns with a change stamped in ``(after_ms, until_ms]``, sorted."""
    sql = """SELECT DISTINCT campaign_id FROM campaign_changes
        WHERE changed_at > fromUnixTimestamp64Milli({after:Int64}, 'UTC')
            AND changed_at <= fromUnixTimestamp64Milli({until:Int64}, 'UTC')
        ORDER BY campaign_id"""
    params = {"after": after_ms, "until": until_ms}
    return [row[0] for row in client.query(sql, parameters=params).result_rows]


def read_mark(client: Client, *, job: str) -> int | None:
    """How far ``job`` has read the change log (epoch ms), or None before its first round."""
    sql = "SELECT upto_ms FROM monitor_marks FINAL WHERE job = {job:String}"
    rows = client.query(sql, parameters={"job": job}).result_rows
    return int(rows[0][0]) if rows else None


def save_mark(client: Client, *, job: str, upto_ms: int) -> None:
    """Record that ``job`` has handled every change up to ``upto_ms`` (the latest mark wins)."""
    client.insert(
        "monitor_marks",
        [[job, upto_ms, upto_ms]],
        column_names=["job", "upto_ms", "version"],
        column_type_names=["String", "Int64", "UInt64"],
    )


def campaigns_of_plans(client: Client, *, plan_ids: Sequence[str]) -> list[str]:
    """The campaigns of these plans, sorted."""
    if not plan_ids:
        return []
    sql = """SELECT DISTINCT campaign_id FROM campaigns FINAL
        WHERE plan_id IN {ids:Array(String)} ORDER BY campaign_id"""
    rows = client.query(sql, parameters={"ids": list(plan_ids)}).result_rows
    return [row[0] for row in rows]


def plans_of(client: Client, *, campaign_ids: Sequence[str]) -> list[str]:
    """The plans these campaigns belong to, sorted."""
    if not campaign_ids:
        return []
    sql = """SELECT DISTINCT plan_id FROM campaigns FINAL
        WHERE campaign_id IN {ids:Array(String)} AND plan_id != '' ORDER BY plan_id"""
    rows = client.query(sql, parameters={"ids": list(campaign_ids)}).result_rows
    return [row[0] for row in rows]
