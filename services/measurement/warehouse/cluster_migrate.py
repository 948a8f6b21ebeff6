"""``migrate``: each migration applied once, by one process, under a claim — on a ClickHouse
cluster and on a single node alike.

Several measurement replicas start at once against one cluster. Each ``ON CLUSTER`` statement is
idempotent and ClickHouse's distributed DDL queue (in Keeper) runs it on every node, but a
migration's backfill (``INSERT … SELECT``) must not run twice, nor a later migration before an
earlier one is complete. So a migration is *claimed* first:

* ``schema_migrations`` and ``schema_migration_claims`` are replicated across the whole cluster
  (one Keeper path for all shards, no ``{shard}`` in it): every node holds the full history;
* a claim is an insert of ``(version, attempt, owner)`` with the deduplication token
  ``migration-<version>-<attempt>``: Keeper keeps the first insert of a token and drops the
  others, so of processes claiming the same attempt exactly one row stands — the lock is Keeper's
  own compare-and-set, reached through SQL (no Keeper client in the service);
* the process whose row stands applies the migration (DDL waits for every node up to
  ``distributed_ddl_task_timeout``) and records it; the others wait until it is recorded;
* a claim older than ``LEASE_S`` whose migration is still not recorded (its owner died) is taken
  over by claiming the next attempt.

A replica that has not fetched a claim yet cannot let a second process in: that process's insert
of the same token is dropped by Keeper, and a claim it cannot see as its own counts as lost, so
it waits and asks again.

On a single node (no cluster) the same scheme holds with plain MergeTree tables: a
non-replicated table deduplicates a token within ``non_replicated_deduplication_window``, so of
two measurement replicas (or a replica and ``mrm migrate``) starting at once only one runs a
backfill.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence

from clickhouse_connect.driver.client import Client

from services.measurement.warehouse import cluster as rendering

LEASE_S = 900.0
"""How long a claim may stay unrecorded before another process takes the migration over."""

DDL_TIMEOUT_S = 300
"""``distributed_ddl_task_timeout``: how long an ON CLUSTER statement waits for every node."""

POLL_S = 1.0

_CONSISTENT = {"select_sequential_consistency": 1}


class MigrationTimeout(RuntimeError):
    """Another process claimed a migration and did not record it in time."""


def history_ddl(db: str, cluster: str) -> tuple[str, ...]:
    """The history and claim tables: on a cluster one replica per node of the whole cluster,
    on a single node (``cluster`` empty) plain tables."""
    if cluster:
        on = " " + rendering.on_cluster(cluster)
        history = rendering.replicated_engine(
            "ReplacingMergeTree", "", zk_path="/clickhouse/tables/all/{database}/schema_migrations"
        )
        claims = rendering.replicated_engine(
            "MergeTree", "", zk_path="/clickhouse/tables/all/{database}/schema_migration_claims"
        )
        window = "replicated_deduplication_window"
    else:
        on, history, claims = "", "ReplacingMergeTree", "MergeTree"
        window = "non_replicated_deduplication_window"
    return (
        f"CREATE DATABASE IF NOT EXISTS {db}{on}",
        f"""CREATE TABLE IF NOT EXISTS {db}.schema_migrations{on} (
            version UInt32, name String,
            applied_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC')
        ) ENGINE = {history} ORDER BY version""",
        f"""CREATE TABLE IF NOT EXISTS {db}.schema_migration_claims{on} (
            version UInt32, attempt UInt32, owner String,
            claimed_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC')
        ) ENGINE = {claims} ORDER BY (version, attempt)
        SETTINGS {window} = 10000""",
    )


def applied(client: Client, db: str) -> set[int]:
    """The versions recorded in the history."""
    sql = f"SELECT version FROM {db}.schema_migrations"
    return {int(row[0]) for row in client.query(sql, settings=_CONSISTENT).result_rows}


def _latest_claim(client: Client, db: str, version: int) -> tuple[int, str, float] | None:
    """(attempt, owner, age in seconds) of the latest claim of ``version``, None if none."""
    sql = f"""SELECT attempt, owner, dateDiff('millisecond', claimed_at, now64(3, 'UTC')) / 1000
        FROM {db}.schema_migration_claims WHERE version = {{v:UInt32}}
        ORDER BY attempt DESC, claimed_at LIMIT 1"""
    rows = client.query(sql, parameters={"v": version}, settings=_CONSISTENT).result_rows
    return (int(rows[0][0]), str(rows[0][1]), float(rows[0][2])) if rows else None


def claim(client: Client, db: str, *, version: int, owner: str, lease_s: float = LEASE_S) -> bool:
    """Try to claim ``version``; True if this ``owner`` holds it, False if another owner's claim
    stands (live, or not yet visible on this replica: the caller waits and asks again)."""
    latest = _latest_claim(client, db, version)
    if latest is None:
        attempt = 1
    else:
        attempt, holder, age = latest
        if holder == owner:
            return True
        if age < lease_s:
            return False
        attempt += 1
    client.insert(
        f"{db}.schema_migration_claims",
        [[version, attempt, owner]],
        column_names=["version", "attempt", "owner"],
        settings={
            "insert_deduplicate": 1,
            "insert_deduplication_token": f"migration-{version}-{attempt}",
        },
    )
    # a dropped (deduplicated) insert means another claim of this attempt came first; this
    # replica may not have fetched it yet, so "no row of mine" is a loss either way
    latest = _latest_claim(client, db, version)
    return latest is not None and latest[:2] == (attempt, owner)


def migrate_claimed(
    client: Client,
    migrations: Sequence[tuple[int, str, tuple[str, ...]]],
    *,
    db: str,
    cluster: str,
    sleep: Callable[[float], None] = time.sleep,
    wait_s: float = LEASE_S + DDL_TIMEOUT_S,
) -> list[int]:
    """Apply, in order, the migrations the history lacks, each statement rendered for
    ``cluster`` (as written if empty); return those this process applied (one claimed and
    applied by another process is waited for, not returned)."""
    ddl = {"distributed_ddl_task_timeout": DDL_TIMEOUT_S} if cluster else {}
    for statement in history_ddl(db, cluster):
        client.command(statement, settings=ddl)
    owner = uuid.uuid4().hex
    mine = []
    for version, name, statements in migrations:
        waited = 0.0
        while version not in applied(client, db):
            if claim(client, db, version=version, owner=owner):
                for statement in statements:
                    sql = statement.format(db=db)
                    for rendered in rendering.render(sql, cluster=cluster) if cluster else (sql,):
                        client.command(rendered, settings=ddl)
                client.insert(
                    f"{db}.schema_migrations", [[version, name]], column_names=["version", "name"]
                )
                mine.append(version)
                break
            if waited >= wait_s:
                raise MigrationTimeout(
                    f"migration {version} ({name}) claimed by another process and not applied "
                    f"within {wait_s:.0f} s"
                )
            sleep(POLL_S)
            waited += POLL_S
    return mine
