"""Bare ClickHouse figures measured in the benchmark's own chDB engine: the raw insert limit
and KPI query latency on a large synthetic history.

The benchmark process opens one chDB path (chDB allows one per process) and keeps each
figure in a database of its own, created with measurement's own migrations.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from clickhouse_connect.driver.client import Client

from mrm.bench.data import LeadStream, meta, money, planning_rows, repeat
from mrm.bench.history import CHANNELS, History, HistorySpec, brand_name, insert_history
from services.measurement import warehouse
from shared.events import EventData
from shared.events.planning import CampaignPlanned, KpiTargetSet, PlanCreated
from shared.topics import AD_METRICS, SALES, SPEND


@dataclass(frozen=True)
class Inserted:
    """Rows written by a bare insert, and how fast."""

    rows: int
    seconds: float

    @property
    def rate(self) -> float:
        """Rows per second."""
        return self.rows / self.seconds if self.seconds else 0.0


def _count(client: Client, table: str) -> int:
    return int(client.query(f"SELECT count() FROM {table}").result_rows[0][0])


def fresh_database(client: Client, database: str) -> None:
    """Drop and re-create ``database`` with measurement's migrations; make it current."""
    client.command(f"DROP DATABASE IF EXISTS {database} SYNC")
    warehouse.migrate(client, database=database)
    client.database = database


def bare_insert(
    client: Client, *, database: str, stream: LeadStream, rows: int, chunk: int
) -> Inserted:
    """``insert_arrow`` the stream's first ``rows`` rows into ``lead_events`` in ``chunk``-row
    inserts (tables built beforehand: only the inserts are timed); verify the row count."""
    fresh_database(client, database)
    tables = [stream.arrow(start, min(chunk, rows - start)) for start in range(0, rows, chunk)]
    started = time.perf_counter()
    for table in tables:
        client.insert_arrow("lead_events", table)
    seconds = time.perf_counter() - started
    stored = _count(client, "lead_events")
    if stored != rows:
        raise RuntimeError(f"bare insert stored {stored} rows, expected {rows}")
    return Inserted(rows=rows, seconds=seconds)


def _planning_rows(*, run: str, campaigns: list[str], plans: int) -> list[warehouse.StoredEvent]:
    events: list[EventData] = []
    plan_ids = [f"bench-{run}-plan{p}" for p in range(plans)]
    for plan_id in plan_ids:
        events.append(
            PlanCreated(
                plan_id=plan_id,
                name=f"Bench plan {plan_id}",
                period_start=dt.date(2027, 1, 1),
                period_end=dt.date(2027, 12, 31),
                currency="USD",
                owner="cmo",
                status="approved",
            )
        )
    for k, campaign_id in enumerate(campaigns):
        plan_id = plan_ids[k % plans]
        events.append(
            CampaignPlanned(
                campaign_id=campaign_id,
                plan_id=plan_id,
                name=f"Bench campaign {k}",
                channel=CHANNELS[k % len(CHANNELS)],
                brand=brand_name(k % 3),
                owner="manager",
                budget=Decimal("250000.00"),
                currency="USD",
                start_date=dt.date(2027, 1, 1),
                end_date=dt.date(2027, 12, 31),
                gross_margin=Decimal("0.4"),
                status="active",
            )
        )
        targets = (("cpl", "40", "lower_is_better"), ("leads", "50000", "higher_is_better"))
        for kpi, target, direction in (*targets, ("romi", "1.5", "higher_is_better")):
            events.append(
                KpiTargetSet(
                    target_id=f"{campaign_id}-{kpi}",
                    campaign_id=campaign_id,
                    kpi=kpi,
                    target=Decimal(target),
                    direction=direction,  # type: ignore[arg-type]
                )
            )
    return planning_rows(events)


def _sales_units(i: np.ndarray, *, amount: np.ndarray, discount: np.ndarray) -> dict[str, pa.Array]:
    """The optional sales-unit and pricing columns of sales ``i`` (no random draws, so the
    amounts stay those of earlier runs): two thirds through one of 20 partners (sell-out), a
    region of 4, a product of 200 in 5 brands, a list price and reason on every other sale."""

    def texts(prefix: str, numbers: np.ndarray) -> pa.Array:
        return pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers), pa.string()), "")

    direct, priced = pa.array(i % 3 == 0), pa.array(i % 2 == 0)
    product = i % 200
    return {
        "partner_id": pc.if_else(direct, "", texts("partner-", i % 20)),
        "region": pa.array(["EMEA", "Americas", "APAC", "LATAM"]).take(pa.array(i % 4)),
        "product_id": texts("sku-", product),
        "brand": texts("brand-", product % 5),
        "list_price": pc.if_else(
            priced, money(amount + discount), pa.scalar(None, pa.decimal128(18, 2))
        ),
        "discount_reason": pc.if_else(priced, "volume deal", ""),
        "sale_kind": pc.if_else(direct, "", "sell_out"),
    }


def _side_tables(*, run: str, campaigns: list[str], rows: int) -> dict[str, pa.Table]:
    """Spend, ad metrics and sales of the campaigns (``rows`` each), matching the leads."""
    rng = np.random.default_rng(7)
    names = pa.array(campaigns)
    i = np.arange(rows, dtype=np.int64)
    of_campaign = names.take(pa.array(i % len(campaigns)))
    spend = {
        **meta(rows, run=run, phase=0x51, topic=SPEND, source="ads"),
        "campaign_id": of_campaign,
        "channel": repeat("paid_search", rows),
        "amount": money(rng.integers(100, 50_000, rows)),
        "currency": repeat("USD", rows),
    }
    impressions = rng.integers(1_000, 100_000, rows)
    ads = {
        **meta(rows, run=run, phase=0x52, topic=AD_METRICS, source="ads"),
        "campaign_id": of_campaign,
        "channel": repeat("paid_search", rows),
        "impressions": pa.array(impressions.astype(np.uint64)),
        "clicks": pa.array((impressions // rng.integers(20, 200, rows)).astype(np.uint64)),
    }
    customers = i // 3  # three orders per customer on average, first one in their campaign
    amount, discount = rng.integers(1_000, 200_000, rows), rng.integers(0, 2_000, rows)
    sales = {
        **meta(rows, run=run, phase=0x53, topic=SALES, source="orders"),
        "order_id": pc.binary_join_element_wise(
            f"order-{run}-", pc.cast(pa.array(i), pa.string()), ""
        ),
        "customer_id": pc.binary_join_element_wise(
            f"cust-{run}-", pc.cast(pa.array(customers), pa.string()), ""
        ),
        "campaign_id": names.take(pa.array(customers % len(campaigns))),
        "channel": repeat("paid_search", rows),
        "amount": money(amount),
        "discount_amount": money(discount),
        "currency": repeat("USD", rows),
        **_sales_units(i, amount=amount, discount=discount),
    }
    return {
        "spend": pa.table(spend),
        "ad_metrics": pa.table(ads),
        "sales": pa.table(sales),
    }


@dataclass(frozen=True)
class KpiDataset:
    """The history the KPI queries run on."""

    lead_events: int
    side_rows: int
    campaign_ids: list[str]
    plan_ids: list[str]
    seconds: float
    history: History | None = None
    """The past campaigns inserted next to them, for the campaign model."""


def build_kpi_dataset(
    client: Client,
    *,
    database: str,
    run: str,
    lead_events: int,
    campaigns: int,
    plans: int,
    chunk: int = 1_000_000,
    side_rows: int = 200_000,
    history: HistorySpec | None = None,
) -> KpiDataset:
    """Plans, campaigns and targets (through ``warehouse.insert_events``), ``lead_events`` lead
    events (three per lead) and spend / ad metrics / sales via ``insert_arrow``, and the past
    campaigns of ``history`` (if given); merged (raw tables and the ``lead_funnel``
    pre-aggregate)."""
    started = time.perf_counter()
    fresh_database(client, database)
    stream = LeadStream(run=run, phase=0x50, campaigns=campaigns, events_per_lead=3)
    campaign_ids = stream.campaign_ids()
    warehouse.insert_events(
        client, events=_planning_rows(run=run, campaigns=campaign_ids, plans=plans)
    )
    for start in range(0, lead_events, chunk):
        client.insert_arrow("lead_events", stream.arrow(start, min(chunk, lead_events - start)))
    for table, data in _side_tables(run=run, campaigns=campaign_ids, rows=side_rows).items():
        client.insert_arrow(table, data)
    past = insert_history(client, spec=history, run=run) if history is not None else None
    # merged as background merges leave a settled history, the pre-aggregate the lead
    # inserts fed through its materialized view included
    for table in ("lead_events", "spend", "ad_metrics", "sales", "lead_funnel"):
        client.command(f"OPTIMIZE TABLE {table} FINAL")
    return KpiDataset(
        # the KPI campaigns' own lead events; the past's are counted with the past
        lead_events=_count(client, "lead_events") - (past.rows["lead_events"] if past else 0),
        side_rows=side_rows,
        campaign_ids=campaign_ids,
        plan_ids=[f"bench-{run}-plan{p}" for p in range(plans)],
        seconds=time.perf_counter() - started,
        history=past,
    )


@dataclass(frozen=True)
class Latency:
    """Latencies of repeated calls, in seconds."""

    samples: list[float]

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0-100), linear interpolation."""
        return float(np.percentile(self.samples, q))

    @property
    def p50(self) -> float:
        """Median."""
        return statistics.median(self.samples)

    @property
    def p99(self) -> float:
        """99th percentile."""
        return self.percentile(99)


def time_calls(call: Callable[[str], object], keys: list[str], *, calls: int) -> Latency:
    """Time ``calls`` calls of ``call(key)``, cycling through ``keys`` (one warm-up each)."""
    for key in keys[: min(len(keys), 3)]:
        call(key)
    samples = []
    for n in range(calls):
        started = time.perf_counter()
        call(keys[n % len(keys)])
        samples.append(time.perf_counter() - started)
    return Latency(samples)


def time_kpi_queries(client: Client, dataset: KpiDataset, *, calls: int) -> tuple[Latency, Latency]:
    """p50/p99 material of ``warehouse.campaign_kpis`` and ``warehouse.plan_kpis``."""
    campaign = time_calls(
        lambda cid: warehouse.campaign_kpis(client, campaign_id=cid),
        dataset.campaign_ids,
        calls=calls,
    )
    plan = time_calls(
        lambda pid: warehouse.plan_kpis(client, plan_id=pid), dataset.plan_ids, calls=calls
    )
    return campaign, plan
