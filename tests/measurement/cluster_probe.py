"""Run by ``test_cluster_schema`` in a process of its own (chDB takes its config once per
process): a chDB engine whose ``remote_servers`` hold a cluster ``mrm`` of one local shard, the
warehouse migrated for that cluster by ``migrate_claimed`` — Distributed tables over local
tables, materialized views on the local tables, the claim tables — and the same events and
queries on a single-node database beside it. Prints both answers as JSON.

chDB has no Keeper, so ``ON CLUSTER`` and the Replicated engines cannot run here: each statement
is run with them taken out (``on_one_node``); everything else (Distributed tables, sharding keys,
FINAL and subqueries through them, the views, the claims) runs as rendered.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import uuid
from decimal import Decimal as D
from typing import Any

import chdb

from services.measurement import warehouse
from services.measurement.warehouse import StoredEvent
from services.measurement.warehouse.cluster_migrate import migrate_claimed
from shared.events import EventData, new_envelope
from shared.events.ingest import LeadStageChanged, SaleCompleted, SpendRecorded
from shared.events.planning import CampaignPlanned, PlanCreated

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


def at(month: int, day: int) -> dt.datetime:
    return dt.datetime(Y, month, day, 10, tzinfo=dt.UTC)


def event(name: str, data: EventData, when: dt.datetime) -> StoredEvent:
    event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"cluster/{name}")
    envelope = new_envelope(data, source="test", event_id=event_id, occurred_at=when)
    return StoredEvent(envelope=envelope, data=data, topic=data.topic, partition=0, offset=0)


def events() -> list[StoredEvent]:
    """Plan P with campaigns A and B; lead S and customer K in both; spend on both."""
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


def main(path: str, config: str) -> None:
    # the engine, with the cluster, for this process (kept open: closing it ends the engine)
    engine = chdb.connect(f"{path}?config-file={config}")
    single = warehouse.connect(f"chdb://{path}", database="single")
    warehouse.migrate(single, database="single")
    client = warehouse.connect(f"chdb://{path}", database="sharded", cluster="mrm")
    one_node = OneNode(client)
    first = migrate_claimed(one_node, warehouse.MIGRATIONS, db="sharded", cluster="mrm")
    again = migrate_claimed(one_node, warehouse.MIGRATIONS, db="sharded", cluster="mrm")
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
        "sharded": answers(client),
    }
    print(json.dumps(out, default=str, sort_keys=True))
    engine.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
