"""The warehouse's DDL for a ClickHouse cluster (``MRM_CLICKHOUSE_CLUSTER``): pure rendering.

``schema.MIGRATIONS`` is written for one node. On a cluster every table becomes two:

* ``<table>_local`` on every node, ``ON CLUSTER``, with the Replicated variant of its engine
  (``ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/<table>', '{replica}',
  <version>)``): each shard's replicas hold the same rows;
* ``<table>``, a ``Distributed(<cluster>, <db>, <table>_local, <sharding key>)`` table under the
  original name, so every query and every insert of the warehouse modules stays as it is.

Inserts go to the Distributed tables: the sharding key is applied in one place (ClickHouse), not
copied into Python, and with ``distributed_foreground_insert = 1`` (``client.CLUSTER_SETTINGS``,
set on the service's sessions in cluster mode) an insert returns once its shard has the rows,
so a read after a write sees it as on one node, and an insert's deduplication token reaches the
local table (the segment definitions' version race relies on it).

Sharding keys. ``FINAL`` over a Distributed table runs on each shard and collapses the rows of a
sorting key *within* that shard only; it is exact only if every version of a key lands on one
shard, i.e. the sharding expression depends on sorting-key columns alone. Every key below is
(a hash of) a sorting-key column, its prefix where the prefix is the entity's id: the raw
streams, the campaign dimensions, alert state, the funnel and the models by ``campaign_id``, so
one campaign's rows sit on one shard; profiles by ``customer_id``; the others by their id.
Distinct counts need no such care: ``uniqExact`` merges its full sets at the initiator, exact
across shards. Subqueries over Distributed tables inside a distributed query (``IN``, ``JOIN``)
need ``distributed_product_mode = 'global'`` (also in ``CLUSTER_SETTINGS``), else ClickHouse
refuses them.

A materialized view is triggered by inserts into the table it reads, so on a cluster it reads
and writes local tables (``lead_events_local`` → ``lead_funnel_local``): source and target are
sharded alike (by campaign, by customer), so its rows are already on the right shard. Backfill
``INSERT … SELECT`` statements run unchanged against the Distributed tables.
"""

from __future__ import annotations

import re

LOCAL_SUFFIX = "_local"

SHARDING_KEYS: dict[str, str] = {
    # raw streams (migration 1) and the funnel pre-aggregate (3): one campaign on one shard
    "spend": "campaign_id",
    "ad_metrics": "campaign_id",
    "lead_events": "campaign_id",
    "sales": "campaign_id",
    "tasks": "campaign_id",
    "lead_funnel": "campaign_id",
    # planning dimensions, alert state (2), change log and marks (4)
    "plans": "plan_id",
    "plan_approvals": "plan_id",
    "campaigns": "campaign_id",
    "campaign_status": "campaign_id",
    "campaign_budgets": "campaign_id",
    "kpi_targets": "target_id",
    "alert_state": "campaign_id",
    "campaign_changes": "campaign_id",
    "monitor_marks": "job",
    # sales-target cascade (6), discounts and budget lines (7, 8), rules (9)
    "sales_units": "unit_id",
    "sales_targets": "target_id",
    "budget_lines": "line_id",
    "discount_limits": "scope_id",
    "budget_line_removals": "line_id",
    "reallocation_rules": "rule_id",
    # customers and segments (11, 12), campaign models (15)
    "customer_profiles": "customer_id",
    "segment_definitions": "segment_id",
    "customer_profile_versions": "customer_id",
    "campaign_models": "campaign_id",
}
"""table → the sorting-key column its rows are sharded by (``cityHash64`` of it)."""

_CREATE_TABLE = re.compile(
    r"^CREATE TABLE IF NOT EXISTS (?P<db>\w+)\.(?P<table>\w+) (?P<columns>\(.*\))\s*"
    r"ENGINE = (?P<engine>\w*MergeTree)(?:\((?P<args>[^()]*)\))?(?P<rest>.*)$",
    re.DOTALL,
)
_CREATE_VIEW = re.compile(
    r"^CREATE VIEW IF NOT EXISTS (?P<name>\w+\.\w+)(?P<rest>\s+AS\s.*)$", re.DOTALL
)
_CREATE_MV = re.compile(
    r"^CREATE MATERIALIZED VIEW IF NOT EXISTS (?P<name>\w+\.\w+)\s+TO (?P<db>\w+)\.(?P<target>\w+)"
    r"(?P<rest>\s+AS\s.*)$",
    re.DOTALL,
)
_ALTER = re.compile(r"^ALTER TABLE (?P<db>\w+)\.(?P<table>\w+) (?P<rest>.*)$", re.DOTALL)
_INSERT = re.compile(r"^INSERT INTO \w+\.\w+\s")


class UnsupportedStatement(ValueError):
    """A migration statement of a shape the cluster rendering does not know."""


def on_cluster(cluster: str) -> str:
    """The ``ON CLUSTER`` clause (the name quoted as an identifier)."""
    return f"ON CLUSTER {_quote(cluster)}"


def replicated_engine(engine: str, args: str, *, zk_path: str) -> str:
    """``ReplacingMergeTree(version)`` → ``ReplicatedReplacingMergeTree(path, '{replica}',
    version)``; the Keeper path and the replica name come first."""
    prefix = f"'{zk_path}', '{{replica}}'"
    return f"Replicated{engine}({prefix}{', ' + args if args else ''})"


def render(statement: str, *, cluster: str) -> tuple[str, ...]:
    """The statements that do on a cluster what ``statement`` (formatted, single-node) does."""
    sql = statement.strip()
    if match := _CREATE_TABLE.match(sql):
        return _table(match, cluster)
    if match := _CREATE_MV.match(sql):
        # reads the local source table, writes the local target (see the module docstring)
        db, target = match["db"], match["target"]
        select = re.sub(rf"\b{db}\.(\w+)\b", lambda m: f"{db}.{_local(m[1])}", match["rest"])
        return (
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {match['name']} {on_cluster(cluster)} "
            f"TO {db}.{_local(target)}{select}",
        )
    if match := _CREATE_VIEW.match(sql):
        return (f"CREATE VIEW IF NOT EXISTS {match['name']} {on_cluster(cluster)}{match['rest']}",)
    if match := _ALTER.match(sql):
        db, table, rest = match["db"], match["table"], match["rest"]
        _sharding_key(table)
        return (
            f"ALTER TABLE {db}.{_local(table)} {on_cluster(cluster)} {rest}",
            f"ALTER TABLE {db}.{table} {on_cluster(cluster)} {rest}",
        )
    if _INSERT.match(sql):
        return (sql,)
    raise UnsupportedStatement(f"no cluster rendering for: {sql[:80]!r}")


def _table(match: re.Match[str], cluster: str) -> tuple[str, ...]:
    db, table = match["db"], match["table"]
    key = _sharding_key(table)
    local = _local(table)
    engine = replicated_engine(
        match["engine"],
        (match["args"] or "").strip(),
        zk_path=f"/clickhouse/tables/{{shard}}/{{database}}/{table}",
    )
    # non_replicated_deduplication_window is the single-node twin of the replicated window
    rest = match["rest"].replace(
        "non_replicated_deduplication_window", "replicated_deduplication_window"
    )
    return (
        f"CREATE TABLE IF NOT EXISTS {db}.{local} {on_cluster(cluster)} {match['columns']} "
        f"ENGINE = {engine}{rest}",
        f"CREATE TABLE IF NOT EXISTS {db}.{table} {on_cluster(cluster)} AS {db}.{local} "
        f"ENGINE = Distributed({_literal(cluster)}, {_literal(db)}, {_literal(local)}, "
        f"cityHash64({key}))",
    )


def _sharding_key(table: str) -> str:
    try:
        return SHARDING_KEYS[table]
    except KeyError:
        raise UnsupportedStatement(f"table {table!r} has no sharding key") from None


def _local(table: str) -> str:
    return f"{table}{LOCAL_SUFFIX}"


def _quote(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name):
        raise ValueError(f"clickhouse_cluster: invalid cluster name {name!r}")
    return f"`{name}`"


def _literal(name: str) -> str:
    return f"'{name}'"
