"""The cluster rendering against chDB's ClickHouse (26.9, the release line compose deploys): every
rendered statement parses; the migration claims hold under concurrent claimers; and, in a chDB
process whose ``remote_servers`` define a cluster of one local shard, then of two, the warehouse
migrated by ``migrate_claimed`` answers the same queries as the single-node schema.

What chDB cannot run: ``ON CLUSTER`` (no distributed DDL queue) and the Replicated engines (no
Keeper), so the end-to-end runs take them out of each statement (``cluster_probe.on_one_node``).

Two shards. The usual trick for two shards on one server — two replicas on this host, each with
its own ``<default_database>``, and Distributed tables with database ``''`` — does not work in
chDB: ClickHouse counts a replica with a ``default_database`` as remote (``Cluster.cpp``: "replica
is considered non-local, if it has default database set"), so it connects to it over TCP, which
chDB does not serve: ``Code: 210. DB::NetException: Connection refused (127.0.0.1:9000)`` on
insert, ``Code: 279 ... ALL_CONNECTION_TRIES_FAILED`` on select. Two replicas on this host
without ``default_database`` are local, and told apart only by ``shardNum()``; the two-shard run
builds on that (``cluster_probe.on_two_shards``): every local table exists once per shard
database, the rendered Distributed tables read them through a Merge table filtered to the
shard's own database, each shard has its own materialized views, and rows are written to the
shard the sharding key picks. So FINAL per shard, ``uniqExact`` and GLOBAL IN / JOIN across
shards, and the views on local tables run as on a cluster. What is not ClickHouse's own is the
routing of inserts (a Distributed insert to a local shard cannot tell which shard it is:
``shardNum()`` is 0 there, and both shards write the one local table name), so the probe also
inserts every row through a Distributed table whose replicas are remote, with sends stopped, and
compares what ClickHouse queued per shard with what the routing put there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from services.measurement.warehouse import MIGRATIONS
from services.measurement.warehouse.cluster import SHARDING_KEYS, render
from services.measurement.warehouse.cluster_migrate import (
    MigrationTimeout,
    claim,
    history_ddl,
    migrate_claimed,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
PROBE = ROOT / "tests" / "measurement" / "cluster_probe.py"
sys.path.insert(0, str(PROBE.parent))

from cluster_probe import OneNode, on_one_node  # noqa: E402


def rendered() -> list[str]:
    out = list(history_ddl("mrm", "mrm_cluster"))
    for _, _, statements in MIGRATIONS:
        for statement in statements:
            out += render(statement.format(db="mrm"), cluster="mrm_cluster")
    return out


def parse(client: Client, sql: str) -> str:
    """ClickHouse's own formatting of ``sql``: raises on a syntax error, without running it."""
    return str(client.command("SELECT formatQuery({q:String})", parameters={"q": sql}))


def test_every_rendered_statement_parses(warehouse_client: Client) -> None:
    statements = rendered()
    # by hand: 3 history, 2 per table (25), 2 views, 2 MVs, 2 backfills, 2 per ALTER (21)
    assert len(statements) == 101
    for sql in statements:
        formatted = parse(warehouse_client, sql)
        assert ("ON CLUSTER" in formatted) == (not sql.startswith("INSERT")), sql
    with pytest.raises(DatabaseError, match="Syntax error"):
        parse(warehouse_client, statements[3].replace("ORDER BY", "ORDER BY ORDER BY"))


def test_one_of_two_claimers_wins_and_a_stale_claim_is_taken_over(
    warehouse_client: Client, unique_id: str
) -> None:
    db = f"claims_{unique_id}"
    warehouse_client.command(f"CREATE DATABASE {db}")
    try:
        warehouse_client.command(on_one_node(history_ddl(db, "c")[2]))
        assert claim(warehouse_client, db, version=3, owner="a") is True
        assert claim(warehouse_client, db, version=3, owner="b") is False  # a's claim is live
        assert claim(warehouse_client, db, version=3, owner="a") is True  # still a's
        assert claim(warehouse_client, db, version=4, owner="b") is True  # another migration
        # a's claim of 3 is older than a zero lease: b takes over with attempt 2
        assert claim(warehouse_client, db, version=3, owner="b", lease_s=0) is True
        assert claim(warehouse_client, db, version=3, owner="a") is False
        rows = warehouse_client.query(
            f"SELECT version, attempt, owner FROM {db}.schema_migration_claims ORDER BY ALL"
        ).result_rows
        assert rows == [(3, 1, "a"), (3, 2, "b"), (4, 1, "b")]
    finally:
        warehouse_client.command(f"DROP DATABASE IF EXISTS {db}")


def test_a_same_attempt_claim_keeps_the_first_insert(
    warehouse_client: Client, unique_id: str
) -> None:
    """Two processes that read "no claim" both insert attempt 1: the token keeps the first."""
    db = f"claims_{unique_id}"
    warehouse_client.command(f"CREATE DATABASE {db}")
    try:
        warehouse_client.command(on_one_node(history_ddl(db, "c")[2]))
        for owner in ("a", "b"):
            warehouse_client.insert(
                f"{db}.schema_migration_claims",
                [[7, 1, owner]],
                column_names=["version", "attempt", "owner"],
                settings={"insert_deduplication_token": "migration-7-1"},
            )
        assert claim(warehouse_client, db, version=7, owner="b") is False
        assert claim(warehouse_client, db, version=7, owner="a") is True
    finally:
        warehouse_client.command(f"DROP DATABASE IF EXISTS {db}")


def test_a_migration_claimed_elsewhere_is_waited_for_not_applied_again(
    warehouse_client: Client, unique_id: str
) -> None:
    db = f"claims_{unique_id}"
    client = OneNode(warehouse_client)
    warehouse_client.command(f"CREATE DATABASE {db}")
    try:
        warehouse_client.command(f"CREATE TABLE {db}.log (v UInt8) ENGINE = MergeTree ORDER BY v")
        for statement in history_ddl(db, "c")[1:]:
            client.command(statement)
        warehouse_client.insert(
            f"{db}.schema_migration_claims",
            [[1, 1, "other"]],
            column_names=["version", "attempt", "owner"],
        )
        naps: list[float] = []

        def other_finishes(seconds: float) -> None:
            naps.append(seconds)
            warehouse_client.insert(
                f"{db}.schema_migrations", [[1, "one"]], column_names=["version", "name"]
            )

        migrations = [
            (1, "one", ("INSERT INTO {db}.log VALUES (1)",)),
            (2, "two", ("INSERT INTO {db}.log VALUES (2)",)),
        ]
        mine = migrate_claimed(client, migrations, db=db, cluster="c", sleep=other_finishes)  # type: ignore[arg-type]
        assert mine == [2]  # 1 was the other process's: waited for once, not run here
        assert naps == [1.0]
        assert warehouse_client.query(f"SELECT v FROM {db}.log").result_rows == [(2,)]
        # a live claim never recorded: the wait ends with an error naming the migration
        warehouse_client.insert(
            f"{db}.schema_migration_claims",
            [[3, 1, "other"]],
            column_names=["version", "attempt", "owner"],
        )
        migrations.append((3, "three", ("INSERT INTO {db}.log VALUES (3)",)))
        with pytest.raises(MigrationTimeout, match=r"migration 3 \(three\) claimed by another"):
            migrate_claimed(client, migrations, db=db, cluster="c", sleep=lambda _: None, wait_s=2)  # type: ignore[arg-type]
        assert warehouse_client.query(f"SELECT v FROM {db}.log").result_rows == [(2,)]
    finally:
        warehouse_client.command(f"DROP DATABASE IF EXISTS {db}")


def probe(tmp_path: Path, *hosts: str) -> dict[str, Any]:
    """Run ``cluster_probe`` with a cluster ``mrm`` of one shard per host (all this process: chDB
    has no TCP server, the port only marks a replica as local), and ``mrm_remote``, the same
    hosts with a ``default_database`` (remote to ClickHouse, never reached); its output."""

    def cluster(replica: str) -> str:
        return "".join(
            f"<shard><replica><host>{host}</host><port>9000</port>{replica}</replica></shard>"
            for host in hosts
        )

    config = tmp_path / "cluster.xml"
    config.write_text(
        f"<clickhouse><tcp_port>9000</tcp_port><remote_servers><mrm>{cluster('')}</mrm>"
        f"<mrm_remote>{cluster('<default_database>sharded</default_database>')}</mrm_remote>"
        "</remote_servers></clickhouse>"
    )
    done = subprocess.run(
        [sys.executable, str(PROBE), str(tmp_path / "engine"), str(config), str(len(hosts))],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    # the service's session settings for Distributed tables, in force for every query below
    assert out["session"] == ["global", "True"]
    every = [version for version, _, _ in MIGRATIONS]
    assert out["applied"] == [every, []]  # applied once, then nothing left
    assert out["sharded"] == out["single"]
    # and both are right (by hand): spend 20 + 5, each redelivered once; sales 10 + 30 by the
    # one customer K; leads S (in A and B), T, U counted once each at their highest stage
    plan = out["sharded"]["plan"]
    assert (plan["spend"], plan["revenue"], plan["orders"], plan["customers"]) == (
        "25.00", "40.00", 2, 1,
    )  # fmt: skip
    assert plan["funnel"] == {"visitor": 3, "lead": 3, "mql": 2, "sql": 1, "sal": 0,
                              "opportunity": 0, "customer": 0}  # fmt: skip
    campaign = out["sharded"]["campaign"]
    assert (campaign["spend"], campaign["revenue"], campaign["leads"]) == ("20.00", "10.00", 2)
    assert out["sharded"]["funnel"]["stages"]["sql"] == 1
    # A's status: the later of its two versions
    assert out["sharded"]["campaigns_current"] == [
        ["A", "paused", "100.00"],
        ["B", "draft", "100.00"],
    ]
    return out


def test_the_cluster_schema_answers_as_the_single_node_one(tmp_path: Path) -> None:
    out = probe(tmp_path, "localhost")
    engines = out["engines"]
    for table in SHARDING_KEYS:
        assert engines[table] == "Distributed", table
        assert engines[f"{table}_local"].endswith("MergeTree"), table
    assert (
        engines["lead_funnel_mv"] == engines["customer_profile_versions_mv"] == "MaterializedView"
    )


def test_on_two_shards_a_campaign_sits_on_one_shard_and_the_answers_are_one_nodes(
    tmp_path: Path,
) -> None:
    out = probe(tmp_path, "localhost", "127.0.0.1")
    for table in SHARDING_KEYS:
        assert out["engines"][table] == "Distributed", table
    shards = out["shards"]
    for shard in ("shard1", "shard2"):
        engines = shards[shard]["engines"]
        for table in SHARDING_KEYS:
            assert engines[f"{table}_local"].endswith("MergeTree"), (shard, table)
        assert engines["lead_funnel_mv"] == "MaterializedView"
        assert engines["customer_profile_versions_mv"] == "MaterializedView"
    # rows on both shards, each campaign's on one: cityHash64('A') % 2 = 1 → shard 2, B → 1;
    # the funnel's rows were written by each shard's own view
    for table in ("spend", "lead_events", "sales", "campaigns", "lead_funnel"):
        (rows_1, campaigns_1), (rows_2, campaigns_2) = (
            shards[shard]["tables"][table] for shard in ("shard1", "shard2")
        )
        assert rows_1 > 0 and rows_2 > 0, table
        assert (campaigns_1, campaigns_2) == (["B"], ["A"]), table
    # ClickHouse's own Distributed insert sends every row where the probe's routers put it
    routing = out["routing"]
    assert set(routing) == set(SHARDING_KEYS)
    for table, sides in routing.items():
        assert sides["placed"] == sides["sent"], table
    assert all(routing["spend"]["sent"][shard][0] > 0 for shard in (0, 1))
    # every query module on a bench dataset (12 planned and 20 past campaigns, two profile
    # versions of 30 customers): the same answers on two shards as on one node
    breadth = out["breadth"]
    assert breadth["sharded"].keys() == breadth["single"].keys()
    for name, answer in breadth["single"].items():
        assert breadth["sharded"][name] == answer, name
    single = breadth["single"]
    assert (single["members"][""]["buyers"], len(single["peers"])) == (30, 20)
    assert {p["region"] for p in single["profiles_as_of"]} == {"EMEA"}  # version 2 of 30
    assert {p["region"] for p in single["profiles_between"]} == {"APAC"}  # version 1
    for table in ("lead_events", "sales", "customer_profiles", "customer_profile_versions"):
        assert all(rows > 0 for rows, _ in routing[table]["placed"]), table
