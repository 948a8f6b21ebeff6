"""The warehouse's migrations on one node: each applied once under a claim however many
processes start at once (two measurement replicas, or a replica and ``mrm migrate``), and
``mrm migrate measurement`` from the command line."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from services.measurement import warehouse
from services.measurement.warehouse import MIGRATIONS
from services.measurement.warehouse.cluster_migrate import migrate_claimed

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
HEAD = MIGRATIONS[-1][0]


def at_once(*runs):  # type: ignore[no-untyped-def]
    """Run the callables in threads started together; their results, in order."""
    results: list[object] = [None] * len(runs)
    errors: list[BaseException] = []
    start = threading.Barrier(len(runs))

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = runs[index]()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(runs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


def test_two_processes_at_once_run_a_backfill_once(
    warehouse_client: Client, chdb_url: str, unique_id: str
) -> None:
    db = f"mig_{unique_id}"
    migrations = [
        (
            1,
            "table",
            ("CREATE TABLE IF NOT EXISTS {db}.log (v UInt8) ENGINE = MergeTree ORDER BY v",),
        ),
        (2, "backfill", ("INSERT INTO {db}.log VALUES (2)",)),
        (3, "another", ("INSERT INTO {db}.log VALUES (3)",)),
    ]
    clients = [warehouse.connect(chdb_url, database="default") for _ in range(2)]
    try:
        mine = at_once(
            *(
                lambda c=client: migrate_claimed(c, migrations, db=db, cluster="")  # type: ignore[misc]
                for client in clients
            )
        )
        applied = sorted(v for versions in mine for v in versions)  # type: ignore[attr-defined]
        assert applied == [1, 2, 3]  # each by one of the two, none twice
        rows = warehouse_client.query(f"SELECT v FROM {db}.log ORDER BY v").result_rows
        assert rows == [(2,), (3,)]
        history = f"SELECT version FROM {db}.schema_migrations FINAL ORDER BY version"
        assert warehouse_client.query(history).result_rows == [(1,), (2,), (3,)]
    finally:
        for client in clients:
            client.close()
        warehouse_client.command(f"DROP DATABASE IF EXISTS {db}")


def test_two_replicas_at_once_migrate_the_warehouse_between_them(
    warehouse_client: Client, chdb_url: str, unique_id: str
) -> None:
    db = f"mig_{unique_id}"
    clients = [warehouse.connect(chdb_url, database="default") for _ in range(2)]
    try:
        mine = at_once(*(lambda c=client: warehouse.migrate(c, database=db) for client in clients))
        first, second = mine  # type: ignore[misc]
        assert sorted([*first, *second]) == [v for v, _, _ in MIGRATIONS]
        # the lead funnel's backfill (migration 3) ran once: one view row per funnel, no doubles
        tables = f"SELECT count() FROM system.tables WHERE database = '{db}'"
        assert warehouse_client.command(tables) == warehouse_client.command(
            "SELECT count() FROM system.tables WHERE database = 'mrm'"
        )
        assert warehouse.migrate(clients[0], database=db) == []
    finally:
        for client in clients:
            client.close()
        warehouse_client.command(f"DROP DATABASE IF EXISTS {db}")


def test_a_warehouse_migrated_before_claims_is_taken_as_it_is(
    warehouse_client: Client, unique_id: str
) -> None:
    """A warehouse whose history predates the claim table: nothing is applied again."""
    db = f"mig_{unique_id}"
    try:
        assert warehouse.migrate(warehouse_client, database=db) == [v for v, _, _ in MIGRATIONS]
        warehouse_client.command(f"DROP TABLE {db}.schema_migration_claims")
        assert warehouse.migrate(warehouse_client, database=db) == []
        claims = f"EXISTS TABLE {db}.schema_migration_claims"
        assert warehouse_client.command(claims) == 1
    finally:
        warehouse_client.command(f"DROP DATABASE IF EXISTS {db}")


def mrm_migrate(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MRM_")}
    return subprocess.run(
        [sys.executable, "-m", "mrm.cli", "migrate", *args],
        cwd=ROOT,
        env={**env, "MRM_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_mrm_migrate_measurement_brings_the_warehouse_to_its_last_migration(
    tmp_path: Path,
) -> None:
    first = mrm_migrate(tmp_path, "measurement")
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.strip() == f"measurement: upgraded (at migration {HEAD}; applied {HEAD})"
    again = mrm_migrate(tmp_path, "measurement")
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.strip() == f"measurement: current (at migration {HEAD}; applied 0)"
    # `all` is the three SQL stores and the warehouse
    every = mrm_migrate(tmp_path, "all")
    assert every.returncode == 0, every.stderr[-2000:]
    assert [line.split(":")[0] for line in every.stdout.splitlines()] == [
        "planning",
        "execution",
        "notifier",
        "measurement",
    ]


def test_mrm_migrate_says_when_the_embedded_warehouse_is_open_elsewhere(tmp_path: Path) -> None:
    """chDB opens a data path from one process at a time: a measurement service holds it."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from services.measurement.warehouse import connect, migrate\n"
            f"client = connect('chdb://{tmp_path / 'clickhouse'}')\n"
            "migrate(client)\n"
            "print('open', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        result = mrm_migrate(tmp_path, "measurement")
        assert result.returncode == 1
        assert "migration failed" in result.stderr
        assert "open in another process" in result.stderr
    finally:
        holder.communicate("", timeout=60)
