"""Unit tests of the cluster rendering of the warehouse's migrations (pure): every table of every
migration becomes a replicated local table plus a Distributed table sharded by a sorting-key
column, views and ALTERs run ON CLUSTER, materialized views read and write local tables, and
without a cluster ``migrate`` runs today's statements unchanged."""

from __future__ import annotations

import re
from typing import Any

import pytest

from services.measurement.settings import MeasurementSettings
from services.measurement.warehouse import MIGRATIONS, migrate
from services.measurement.warehouse.cluster import (
    SHARDING_KEYS,
    UnsupportedStatement,
    render,
)
from services.measurement.warehouse.cluster_migrate import history_ddl

DB = "mrm"
CLUSTER = "mrm_cluster"
ON = "ON CLUSTER `mrm_cluster`"

_TABLE = re.compile(r"^CREATE TABLE IF NOT EXISTS \{db\}\.(\w+) ", re.M)
_ORDER_BY = re.compile(r"ORDER BY \(?([\w, ]+)")


def statements() -> list[str]:
    return [s.format(db=DB) for _, _, group in MIGRATIONS for s in group]


def tables() -> dict[str, str]:
    """table → its CREATE statement, over every migration."""
    out = {}
    for _, _, group in MIGRATIONS:
        for statement in group:
            if match := _TABLE.match(statement.strip()):
                out[match[1]] = statement.format(db=DB)
    return out


def test_every_table_of_every_migration_has_a_sharding_key() -> None:
    assert set(tables()) == set(SHARDING_KEYS)
    # by hand: 5 raw streams (1), 7 dimensions and alert state (2), the funnel (3), 2 (4), 2 (6),
    # 2 (7), 1 (8), 1 (9), 1 (11), 2 (12), 1 (15)
    assert len(SHARDING_KEYS) == 25


@pytest.mark.parametrize("table", sorted(SHARDING_KEYS))
def test_a_table_becomes_a_replicated_local_table_and_a_distributed_one(table: str) -> None:
    ddl = tables()[table]
    local, distributed = render(ddl, cluster=CLUSTER)
    engine = re.search(r"ENGINE = (\w*MergeTree)(?:\(([^()]*)\))?", ddl)
    assert engine is not None
    name, args = engine[1], (engine[2] or "").strip()
    path = f"'/clickhouse/tables/{{shard}}/{{database}}/{table}', '{{replica}}'"
    expected_engine = f"Replicated{name}({path}{', ' + args if args else ''})"
    assert local.startswith(f"CREATE TABLE IF NOT EXISTS {DB}.{table}_local {ON} (")
    assert f"ENGINE = {expected_engine}" in local
    # the columns, the ordering, the partitioning and TTL are today's, character for character
    assert local.split(" (", 1)[1].split("ENGINE")[0] == ddl.split(" (", 1)[1].split("ENGINE")[0]
    assert local.split(expected_engine)[1] == ddl.split(engine[0])[1].replace(
        "non_replicated_deduplication_window", "replicated_deduplication_window"
    )
    key = SHARDING_KEYS[table]
    assert distributed == (
        f"CREATE TABLE IF NOT EXISTS {DB}.{table} {ON} AS {DB}.{table}_local "
        f"ENGINE = Distributed('{CLUSTER}', '{DB}', '{table}_local', cityHash64({key}))"
    )


@pytest.mark.parametrize("table", sorted(SHARDING_KEYS))
def test_the_sharding_key_is_a_sorting_key_column(table: str) -> None:
    """FINAL over a Distributed table collapses within each shard: exact only if all versions of
    a sorting key land on one shard, i.e. the sharding key is made of sorting-key columns."""
    order = _ORDER_BY.search(tables()[table])
    assert order is not None
    columns = [c.strip() for c in order[1].split(",")]
    assert columns[0]
    assert SHARDING_KEYS[table] in columns
    if table != "campaign_changes":  # a plain MergeTree change log, read by time, no FINAL
        assert SHARDING_KEYS[table] in columns[:2]


def test_campaign_streams_are_sharded_by_campaign() -> None:
    """A campaign's events, dimensions, state and models on one shard."""
    by_campaign = {t for t, key in SHARDING_KEYS.items() if key == "campaign_id"}
    assert by_campaign >= {
        "spend", "ad_metrics", "lead_events", "sales", "tasks", "lead_funnel", "campaigns",
        "campaign_status", "campaign_budgets", "alert_state", "campaign_models",
    }  # fmt: skip


def test_views_and_alters_run_on_the_cluster() -> None:
    view = next(s for s in statements() if s.startswith("CREATE VIEW IF NOT EXISTS mrm.campaigns_"))
    (rendered,) = render(view, cluster=CLUSTER)
    assert rendered.startswith(f"CREATE VIEW IF NOT EXISTS mrm.campaigns_current {ON} AS")
    assert rendered.split(" AS", 1)[1] == view.split(" AS", 1)[1]  # reads the Distributed tables
    alter = (
        "ALTER TABLE mrm.sales ADD COLUMN IF NOT EXISTS outlet LowCardinality(String) DEFAULT ''"
    )
    assert render(alter, cluster=CLUSTER) == (
        f"ALTER TABLE mrm.sales_local {ON} ADD COLUMN IF NOT EXISTS outlet LowCardinality(String) "
        "DEFAULT ''",
        f"ALTER TABLE mrm.sales {ON} ADD COLUMN IF NOT EXISTS outlet LowCardinality(String) "
        "DEFAULT ''",
    )


def test_materialized_views_read_and_write_local_tables() -> None:
    views = [s for s in statements() if s.startswith("CREATE MATERIALIZED VIEW")]
    assert len(views) == 2
    rendered = [render(v, cluster=CLUSTER)[0] for v in views]
    assert rendered[0].startswith(
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS mrm.lead_funnel_mv {ON} TO mrm.lead_funnel_local"
    )
    assert "FROM mrm.lead_events_local GROUP BY" in rendered[0]
    assert "TO mrm.customer_profile_versions_local" in rendered[1]
    assert rendered[1].endswith("FROM mrm.customer_profiles_local")
    # a view and its source are sharded alike, so its rows are already on their shard
    assert SHARDING_KEYS["lead_events"] == SHARDING_KEYS["lead_funnel"]
    assert SHARDING_KEYS["customer_profiles"] == SHARDING_KEYS["customer_profile_versions"]


def test_backfills_insert_through_the_distributed_tables_unchanged() -> None:
    inserts = [s for s in statements() if s.startswith("INSERT INTO")]
    assert len(inserts) == 2
    assert [render(s, cluster=CLUSTER) for s in inserts] == [(s,) for s in inserts]


def test_every_statement_renders_and_unknown_shapes_are_refused() -> None:
    rendered = [sql for s in statements() for sql in render(s, cluster=CLUSTER)]
    assert all(ON in sql for sql in rendered if not sql.startswith("INSERT"))
    with pytest.raises(UnsupportedStatement, match="no cluster rendering"):
        render("DROP TABLE mrm.sales", cluster=CLUSTER)
    with pytest.raises(UnsupportedStatement, match="'newtable' has no sharding key"):
        render(
            "CREATE TABLE IF NOT EXISTS mrm.newtable (a String) ENGINE = MergeTree ORDER BY a",
            cluster=CLUSTER,
        )
    with pytest.raises(ValueError, match="invalid cluster name"):
        render(statements()[0], cluster="x; DROP")


def test_history_tables_are_replicated_across_the_whole_cluster() -> None:
    database, history, claims = history_ddl(DB, CLUSTER)
    assert database == f"CREATE DATABASE IF NOT EXISTS mrm {ON}"
    # no {shard} in the Keeper path: every node holds a replica of the one history
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/schema_migrations'" in (
        history
    )
    assert "'/clickhouse/tables/all/{database}/schema_migration_claims', '{replica}'" in claims
    assert "{shard}" not in history + claims


class Recorder:
    """A client that records commands, keeps the history and claims it is given, and answers
    them as ClickHouse would (one process: every claim it makes stands)."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.applied: list[int] = []
        self.claims: dict[int, tuple[int, str]] = {}

    def command(self, sql: str, **_: Any) -> None:
        self.commands.append(sql)

    def query(self, sql: str, parameters: dict[str, Any] | None = None, **_: Any) -> Any:
        if "schema_migration_claims" in sql:
            assert parameters is not None
            claimed = self.claims.get(parameters["v"])
            rows = [(*claimed, 0.0)] if claimed else []
        else:
            rows = [(version,) for version in self.applied]
        return type("Result", (), {"result_rows": rows})()

    def insert(self, table: str, rows: list[list[Any]], **_: Any) -> None:
        for row in rows:
            if table.endswith("schema_migration_claims"):
                self.claims[row[0]] = (row[1], row[2])
            else:
                self.applied.append(row[0])


def test_without_a_cluster_migrate_runs_todays_statements_unchanged() -> None:
    client = Recorder()
    applied = migrate(client, database=DB)  # type: ignore[arg-type]
    assert applied == [version for version, _, _ in MIGRATIONS]
    assert client.applied == applied
    assert client.commands[0] == "CREATE DATABASE IF NOT EXISTS mrm"
    assert "ReplacingMergeTree ORDER BY version" in client.commands[1]
    assert "ENGINE = MergeTree ORDER BY (version, attempt)" in client.commands[2]
    assert "non_replicated_deduplication_window" in client.commands[2]
    assert client.commands[3:] == statements()
    assert not any("ON CLUSTER" in c or "Replicated" in c for c in client.commands)
    assert set(client.claims) == set(applied)  # each migration under a claim


def test_the_setting_defaults_to_one_node_and_checks_the_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert MeasurementSettings().clickhouse_cluster == ""
    monkeypatch.setenv("MRM_CLICKHOUSE_CLUSTER", "mrm_cluster")
    assert MeasurementSettings().clickhouse_cluster == "mrm_cluster"
    monkeypatch.setenv("MRM_CLICKHOUSE_CLUSTER", "bad name")
    with pytest.raises(ValueError, match="clickhouse_cluster"):
        MeasurementSettings()
