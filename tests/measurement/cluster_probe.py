"""Run by ``test_cluster_schema`` in a process of its own (chDB takes its config once per
process): a chDB engine whose ``remote_servers`` hold a cluster ``mrm`` of one local shard, or of
two (argument ``2``), the warehouse migrated for that cluster by ``migrate_claimed`` —
Distributed tables over local tables, materialized views on the local tables, the claim tables —
and the same events and queries on a single-node database beside it. Prints both answers as JSON
(with two shards also every query module's answers over a small bench dataset, what each shard
holds, and where ClickHouse's own Distributed insert sends each row).

chDB has no Keeper, so ``ON CLUSTER`` and the Replicated engines cannot run here: each statement
is run with them taken out (``on_one_node``); everything else (Distributed tables, sharding keys,
FINAL and subqueries through them, the views, the claims) runs as rendered. Two shards both in
this process need more (``on_two_shards``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import sys
import uuid
from collections.abc import Callable
from decimal import Decimal as D
from functools import partial
from typing import Any

import chdb

from mrm.bench.data import LeadStream
from mrm.bench.history import CHANNELS, HistorySpec, insert_history
from mrm.bench.queries import _planning_rows, _side_tables
from services.measurement import warehouse
from services.measurement.warehouse import (
    StoredEvent,
    alerts,
    budgets,
    customers,
    discounts,
    peers,
    pipeline,
    sales_targets,
    segment_members,
    target_forecast,
    uplift,
)
from services.measurement.warehouse.cluster import LOCAL_SUFFIX, SHARDING_KEYS
from services.measurement.warehouse.cluster_migrate import migrate_claimed
from shared.events import EventData, new_envelope
from shared.events.customers import CustomerProfileUpdated
from shared.events.ingest import LeadStageChanged, SaleCompleted, SpendRecorded
from shared.events.planning import CampaignPlanned, CampaignStatusChanged, PlanCreated
from shared.money import FxRates

Y = 2094


def on_one_node(sql: str) -> str:
    """A rendered statement without ON CLUSTER and with the non-replicated engine."""
    sql = re.sub(r" ON CLUSTER `[\w-]+`", "", sql)
    sql = re.sub(r"Replicated(\w*MergeTree)\('[^']*', '\{replica\}'(?:, )?", r"\1(", sql)
    return sql.replace(" replicated_deduplication_window", " non_replicated_deduplication_window")


class OneNode:
    """A client whose DDL runs as ``on_one_node`` renders it."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.statements: list[str] = []

    def command(self, sql: str, **kwargs: Any) -> Any:
        self.statements.append(sql)
        kwargs.pop("settings", None)  # distributed_ddl_task_timeout: no ON CLUSTER here
        return self.client.command(on_one_node(sql), **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


SHARDS = ("shard1", "shard2")
"""The shards' databases: shard ``n`` (``shardNum()``) keeps its local tables in ``SHARDS[n-1]``."""

_LOCAL = re.compile(r"^CREATE TABLE IF NOT EXISTS (?P<db>\w+)\.(?P<table>\w+)_local ", re.DOTALL)
_DISTRIBUTED = re.compile(
    r"^CREATE TABLE IF NOT EXISTS (?P<db>\w+)\.(?P<table>\w+) AS .* ENGINE = Distributed\("
    r"'[\w-]+', '(?P=db)', '(?P=table)_local', (?P<key>.+)\)$",
    re.DOTALL,
)
_MV = re.compile(r"^CREATE MATERIALIZED VIEW IF NOT EXISTS (?P<db>\w+)\.")
_ALTER_LOCAL = re.compile(
    r"^ALTER TABLE (?P<db>\w+)\.(?P<table>\w+)_local (?P<rest>.*)$", re.DOTALL
)
_INSERT = re.compile(r"^INSERT INTO (?P<db>\w+)\.(?P<table>\w+)(?P<rest>\s.*)$", re.DOTALL)


def shard_filters(db: str) -> str:
    """``additional_table_filters``: on shard n, ``<db>.<table>_local`` reads shard n's tables."""
    where = "_database = concat(\\'shard\\', toString(shardNum()))"
    return "{" + ", ".join(f"'{db}.{t}{LOCAL_SUFFIX}': '{where}'" for t in SHARDING_KEYS) + "}"


def on_two_shards(sql: str, *, keys: dict[str, str]) -> list[str]:
    """A statement as ``on_one_node`` renders it, for a cluster of two shards that are both this
    process (``SHARDS``). ClickHouse tells local shards apart only by their number, so:

    * ``<db>.<t>_local`` is a Merge table over ``shard1.<t>_local`` and ``shard2.<t>_local`` (the
      rendered local table, once per shard), and ``shard_filters`` makes shard n read its own;
      FINAL runs per underlying table, i.e. per shard;
    * a materialized view is created in each shard, on that shard's local tables;
    * rows are written to ``<db>.<t>_router`` (Null), whose views send each row to the shard
      ``Distributed`` picks for two shards of weight 1: ``<sharding key> % 2 = n - 1``. (A
      Distributed insert to a local shard cannot be told which shard it is: ``shardNum()`` is 0
      there, and both local shards write the one ``<db>.<t>_local``.)

    ``keys`` collects each table's sharding expression from its Distributed statement.
    """
    if sql.startswith("CREATE DATABASE "):
        return [sql, *(f"CREATE DATABASE IF NOT EXISTS {shard}" for shard in SHARDS)]
    if match := _LOCAL.match(sql):
        db, table = match["db"], match["table"]
        local = f"{db}.{table}{LOCAL_SUFFIX}"
        return [re.sub(rf"\b{db}\.", f"{shard}.", sql) for shard in SHARDS] + [
            f"CREATE TABLE IF NOT EXISTS {local} AS {SHARDS[0]}.{table}{LOCAL_SUFFIX} "
            f"ENGINE = Merge(REGEXP('^({'|'.join(SHARDS)})$'), '^{table}{LOCAL_SUFFIX}$')",
            f"CREATE TABLE IF NOT EXISTS {db}.{table}_router AS {local} ENGINE = Null",
        ]
    if match := _DISTRIBUTED.match(sql):
        keys[match["table"]] = match["key"]
        return [sql, *_routes(match["db"], match["table"], match["key"])]
    if match := _MV.match(sql):
        db = match["db"]
        return [re.sub(rf"\b{db}\.", f"{shard}.", sql) for shard in SHARDS]
    if match := _ALTER_LOCAL.match(sql):
        db, table, rest = match["db"], match["table"], match["rest"]
        key = keys[table]
        shards = [f"ALTER TABLE {shard}.{table}{LOCAL_SUFFIX} {rest}" for shard in SHARDS]
        drop = [f"DROP VIEW {db}.{table}_to_{shard}" for shard in SHARDS]
        return (
            drop
            + shards
            + [
                f"ALTER TABLE {db}.{table}{LOCAL_SUFFIX} {rest}",
                f"ALTER TABLE {db}.{table}_router {rest}",
                *_routes(db, table, key),
            ]
        )
    if (match := _INSERT.match(sql)) and match["table"] in SHARDING_KEYS:
        return [f"INSERT INTO {match['db']}.{match['table']}_router{match['rest']}"]
    return [sql]


def _routes(db: str, table: str, key: str) -> list[str]:
    return [
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{table}_to_{shard} "
        f"TO {shard}.{table}{LOCAL_SUFFIX} AS SELECT * FROM {db}.{table}_router "
        f"WHERE {key} % {len(SHARDS)} = {index}"
        for index, shard in enumerate(SHARDS)
    ]


class TwoShards(OneNode):
    """A client whose DDL runs as ``on_two_shards`` renders it and whose inserts into a sharded
    table go to its router."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.keys: dict[str, str] = {}

    def command(self, sql: str, **kwargs: Any) -> Any:
        self.statements.append(sql)
        kwargs.pop("settings", None)
        result = None
        for statement in on_two_shards(on_one_node(sql), keys=self.keys):
            result = self.client.command(statement, **kwargs)
        return result

    def insert(self, table: str, *args: Any, **kwargs: Any) -> Any:
        return self.client.insert(_router(table), *args, **kwargs)

    def insert_arrow(self, table: str, *args: Any, **kwargs: Any) -> Any:
        return self.client.insert_arrow(_router(table), *args, **kwargs)


def _router(table: str) -> str:
    return f"{table}_router" if table.rsplit(".", 1)[-1] in SHARDING_KEYS else table


def at(month: int, day: int) -> dt.datetime:
    return dt.datetime(Y, month, day, 10, tzinfo=dt.UTC)


def event(name: str, data: EventData, when: dt.datetime) -> StoredEvent:
    event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"cluster/{name}")
    envelope = new_envelope(data, source="test", event_id=event_id, occurred_at=when)
    return StoredEvent(envelope=envelope, data=data, topic=data.topic, partition=0, offset=0)


def events() -> list[StoredEvent]:
    """Plan P with campaigns A and B (A paused); lead S and customer K in both; spend on both."""
    out = [
        event(
            "plan",
            PlanCreated(plan_id="P", name="plan", period_start=dt.date(Y, 1, 1),
                        period_end=dt.date(Y, 12, 31), currency="EUR", owner="cmo"),
            at(1, 1),
        )
    ]  # fmt: skip
    for key in ("A", "B"):
        data = CampaignPlanned(campaign_id=key, plan_id="P", name=key, channel="web", owner="ann",
                               budget=D("100"), currency="EUR", start_date=dt.date(Y, 3, 1),
                               end_date=dt.date(Y, 3, 31))  # fmt: skip
        out.append(event(f"campaign-{key}", data, at(1, 2)))
    # two versions of A's status: FINAL keeps the later one only if both sit on one shard
    for version, (previous, status) in enumerate((("draft", "active"), ("active", "paused")), 2):
        change = CampaignStatusChanged(campaign_id="A", plan_id="P", status=status,
                                       previous_status=previous, version=version)  # fmt: skip
        out.append(event(f"status-A-{version}", change, at(1, version + 1)))
    for name, lead_id, campaign, stage, day in (
        ("s-a", "S", "A", "mql", 2),
        ("s-b", "S", "B", "lead", 3),
        ("t-a", "T", "A", "lead", 4),
        ("u-b", "U", "B", "sql", 5),
    ):
        data = LeadStageChanged(lead_id=lead_id, campaign_id=campaign, channel="web", stage=stage)
        out.append(event(name, data, at(3, day)))
    for name, campaign, amount in (("x1", "A", "20.00"), ("x2", "B", "5.00")):
        spend = SpendRecorded(campaign_id=campaign, channel="web", amount=D(amount), currency="EUR")
        out.append(event(name, spend, at(3, 3)))
    for name, campaign, amount in (("k1", "A", "10.00"), ("k2", "B", "30.00")):
        sale = SaleCompleted(order_id=name, customer_id="K", campaign_id=campaign,
                             amount=D(amount), currency="EUR")  # fmt: skip
        out.append(event(name, sale, at(3, 6)))
    return out


def answers(client: Any) -> dict[str, Any]:
    history = events()
    warehouse.insert_events(client, events=history)
    warehouse.insert_events(client, events=history[-5:])  # redelivered: FINAL collapses them
    now = at(3, 16)
    plan = warehouse.plan_kpis(client, plan_id="P", now=now)
    return {
        "plan": plan,
        "campaign": warehouse.campaign_kpis(client, campaign_id="A", now=now),
        "funnel": warehouse.funnel(client, campaign_id="B"),
        "campaigns_current": client.query(
            "SELECT campaign_id, status, budget FROM campaigns_current ORDER BY campaign_id"
        ).result_rows,
    }


RUN = "c1a55e7d"
"""The bench dataset's run id (hex: it becomes part of event ids)."""


def load_bench(client: Any) -> tuple[list[str], list[str]]:
    """A small bench dataset: 12 planned campaigns in 2 plans with leads, spend, ad metrics and
    sales (sales units, partners, products), 20 past campaigns, and two versions of 30 buyers'
    profiles (a third redelivered); returns the planned campaigns and the buyers."""
    stream = LeadStream(run=RUN, phase=0x50, campaigns=12, events_per_lead=3)
    campaigns = stream.campaign_ids()
    warehouse.insert_events(client, events=_planning_rows(run=RUN, campaigns=campaigns, plans=2))
    client.insert_arrow("lead_events", stream.arrow(0, 1500))
    for table, data in _side_tables(run=RUN, campaigns=campaigns, rows=1000).items():
        client.insert_arrow(table, data)
    insert_history(client, spec=HistorySpec(campaigns=20, years=1), run=RUN)
    buyers = [
        str(row[0])
        for row in client.query(
            "SELECT DISTINCT customer_id FROM sales WHERE customer_id != '' ORDER BY 1 LIMIT 30"
        ).result_rows
    ]
    profiles = [
        event(
            f"profile-{customer}-{version}",
            CustomerProfileUpdated(
                customer_id=customer,
                version=version,
                size="small",
                industry=f"industry-{(k + version) % 3}",
                region=("APAC", "EMEA")[version - 1],
            ),
            dt.datetime(2027, 1, version, tzinfo=dt.UTC),
        )
        for k, customer in enumerate(buyers)
        for version in (1, 2)
    ]
    warehouse.insert_events(client, events=profiles)
    warehouse.insert_events(client, events=profiles[::3])
    return campaigns, buyers


def breadth(client: Any) -> dict[str, Any]:
    """Every query module's answers over ``load_bench``'s dataset (lists whose order the SQL
    leaves open sorted), as JSON values."""
    campaigns, buyers = load_bench(client)
    fx = FxRates(base="USD", rates={"EUR": D("1.08")})
    now, as_of = dt.datetime(2027, 6, 1, tzinfo=dt.UTC), dt.datetime(2027, 3, 1, tzinfo=dt.UTC)
    start, end = dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2027, 12, 31, tzinfo=dt.UTC)
    first, plan = campaigns[0], f"bench-{RUN}-plan0"
    channel = CHANNELS[1]  # of planned and past campaigns
    year = (dt.date(2026, 1, 1), dt.date(2027, 12, 31))
    calls: dict[str, Callable[[], Any]] = {
        "plan": lambda: warehouse.plan_kpis(client, plan_id=plan, now=now),
        "campaigns": lambda: warehouse.campaigns_kpis(client, campaign_ids=campaigns, now=now),
        "funnel": lambda: warehouse.funnel(client, campaign_id=campaigns[1]),
        "company": lambda: warehouse.company_kpis(client, fx=fx, now=now),
        "company_period": lambda: warehouse.company_kpis(
            client, fx=fx, start=start, end=end, now=now
        ),
        "channel": lambda: warehouse.channel_kpis(client, channel=channel, fx=fx, now=now),
        "compare": lambda: warehouse.compare_campaign(client, campaign_id=first, fx=fx, now=now),
        "stage_durations": lambda: warehouse.stage_durations(client),
        "segments": lambda: warehouse.segment_effectiveness(client, fx=fx, now=now),
        "plan_daily_spend": lambda: warehouse.plan_daily_spend(client, plan_id=plan),
        "currencies": lambda: warehouse.campaign_currencies(client, campaign_ids=campaigns),
        "targets": lambda: warehouse.targets_by_campaign(client, campaign_ids=campaigns),
        "members": lambda: segment_members.member_measures(
            client, members=buyers, start=None, end=None
        ),
        "members_weekly": lambda: segment_members.member_measures(
            client, members=buyers, start=start, end=end, bucket="week"
        ),
        "profiles_as_of": lambda: segment_members.profiles_as_of(client, end=now),
        "profiles_between": lambda: segment_members.profiles_as_of(
            client, end=dt.datetime(2027, 1, 1, 12, tzinfo=dt.UTC)
        ),
        "customer_sales": lambda: customers.customer_sales(client, start=start, end=end),
        "buyers": lambda: customers.profiles_of_buyers(client, start=start, end=end),
        "pipeline": lambda: pipeline.pipeline_inputs(
            client, scope="plan", id=plan, fx=fx, as_of=as_of
        ),
        "uplift": lambda: uplift.uplift_inputs(
            client,
            campaign_id=first,
            fx=fx,
            as_of=as_of,
            weeks_before=4,
            weeks_after=4,
            control=True,
        ),
        "plan_budget": lambda: budgets.plan_budget(client, plan_id=plan),
        "plans_of": lambda: alerts.plans_of(client, campaign_ids=campaigns),
        "peers": lambda: peers.history(client, as_of=now),
        "sale_groups": lambda: sales_targets.sale_groups(client, start=year[0], end=year[1]),
        "forecast": lambda: target_forecast.target_forecast_inputs(
            client, period="2027", brand=None, start=year[0], end=year[1], as_of=as_of, fx=fx
        ),
        "discounts": lambda: discounts.discounted_sales(client, campaign_ids=campaigns),
    }
    for by in warehouse.SALES_DIMENSIONS:
        calls[f"sales_by_{by}"] = partial(warehouse.sales_by, client, by=by, fx=fx, now=now)
    period: dict[str, Any] = {"start": start, "end": end, "fx": fx, "bucket": "week"}
    for scope, key in (("campaign", first), ("plan", plan), ("channel", channel), ("company", "")):
        calls[f"series_{scope}"] = partial(
            warehouse.kpi_series, client, scope=scope, id=key or None, now=now, **period
        )
    for scope, key in (("brand", "brand-1"), ("partner", "partner-1"), ("region", "EMEA")):
        calls[f"trade_{scope}"] = partial(
            warehouse.trade_series, client, scope=scope, id=key, **period
        )
    unordered = {"sale_groups", "forecast"}  # groups of a GROUP BY without ORDER BY
    return {name: _plain(call(), sort=name in unordered) for name, call in calls.items()}


def _plain(value: Any, *, sort: bool = False) -> Any:
    """``value`` as JSON values (dataclasses as dicts); with ``sort``, lists sorted."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value), sort=sort)
    if isinstance(value, dict):
        return {str(key): _plain(item, sort=sort) for key, item in value.items()}
    if isinstance(value, list | tuple):
        items = [_plain(item, sort=sort) for item in value]
        return sorted(items, key=repr) if sort else items
    return json.loads(json.dumps(value, default=str))


def main(path: str, config: str, shards: str = "1") -> None:
    # the engine, with the cluster, for this process (kept open: closing it ends the engine)
    engine = chdb.connect(f"{path}?config-file={config}")
    single = warehouse.connect(f"chdb://{path}", database="single")
    warehouse.migrate(single, database="single")
    client = warehouse.connect(f"chdb://{path}", database="sharded", cluster="mrm")
    ddl: OneNode
    if shards == "2":
        client.set_client_setting("additional_table_filters", shard_filters("sharded"))
        ddl = TwoShards(client)
    else:
        ddl = OneNode(client)
    first = migrate_claimed(ddl, warehouse.MIGRATIONS, db="sharded", cluster="mrm")
    again = migrate_claimed(ddl, warehouse.MIGRATIONS, db="sharded", cluster="mrm")
    engines = dict(
        client.query(
            "SELECT name, engine FROM system.tables WHERE database = 'sharded'"
        ).result_rows
    )
    session = client.query(
        "SELECT getSetting('distributed_product_mode'), getSetting('distributed_foreground_insert')"
    ).result_rows
    out = {
        "session": [str(value) for value in session[0]],
        "applied": [first, again],
        "engines": engines,
        "single": answers(single),
        "sharded": answers(ddl),
    }
    if isinstance(ddl, TwoShards):
        out["shards"] = placement(client)  # of the small dataset
        out["breadth"] = {"single": breadth(single), "sharded": breadth(ddl)}
        out["routing"] = routing(client, ddl.keys)
    print(json.dumps(out, default=str, sort_keys=True))
    engine.close()


def placement(client: Any) -> dict[str, Any]:
    """Per shard: the engines of its tables, and per campaign-sharded table the rows and the
    campaigns its local table holds."""
    out: dict[str, Any] = {}
    for shard in SHARDS:
        engines = client.query(
            "SELECT name, engine FROM system.tables WHERE database = {d:String}",
            parameters={"d": shard},
        ).result_rows
        tables: dict[str, Any] = {}
        for table in ("spend", "lead_events", "sales", "campaigns", "lead_funnel"):
            rows = client.query(
                f"SELECT count(), groupUniqArray(campaign_id) FROM {shard}.{table}{LOCAL_SUFFIX}"
            ).result_rows
            tables[table] = [int(rows[0][0]), sorted(rows[0][1])]
        out[shard] = {"engines": dict(engines), "tables": tables}
    return out


def routing(client: Any, keys: dict[str, str]) -> dict[str, Any]:
    """Per table, per shard: (rows, sum of the rows' hashes) as the routers placed them, and as
    ClickHouse's own Distributed insert sends them.

    For the latter every row is inserted again into a Distributed table over ``mrm_remote`` (the
    same two hosts, each with a ``default_database``, hence remote to ClickHouse), in the
    background mode with sends stopped: the insert queues each shard's rows in a directory of
    that shard's, read back with the format ``Distributed``."""
    client.command("SYSTEM STOP MERGES")  # both sides read the same parts
    client.command("CREATE DATABASE IF NOT EXISTS routing")
    out: dict[str, Any] = {}
    for table, key in sorted(keys.items()):
        local = f"{table}{LOCAL_SUFFIX}"
        client.command(
            f"CREATE TABLE routing.{table} AS sharded.{local} "
            f"ENGINE = Distributed('mrm_remote', 'sharded', '{local}', {key})"
        )
        client.command(f"SYSTEM STOP DISTRIBUTED SENDS routing.{table}")
        client.command(
            f"INSERT INTO routing.{table} SELECT * FROM sharded.{table}",
            settings={"distributed_foreground_insert": 0},
        )
        queued = dict(
            client.query(
                "SELECT extract(data_path, '(shard\\d+)_replica1/$'), data_path "
                "FROM system.distribution_queue WHERE database = 'routing' AND table = {t:String}",
                parameters={"t": table},
            ).result_rows
        )
        placed, sent = [], []
        for shard in SHARDS:
            placed.append(_digest(client, f"{shard}.{local}"))
            path = queued.get(shard)
            sent.append(_digest(client, f"file('{path}*.bin', 'Distributed')") if path else [0, 0])
        out[table] = {"placed": placed, "sent": sent}
    return out


def _digest(client: Any, source: str) -> list[int]:
    rows = client.query(
        f"SELECT count(), sum(cityHash64(formatRow('TabSeparated', *))) FROM {source}"
    ).result_rows
    return [int(rows[0][0]), int(rows[0][1])]


if __name__ == "__main__":
    main(*sys.argv[1:])
