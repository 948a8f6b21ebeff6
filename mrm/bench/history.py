"""A past the campaign model can learn from: a few hundred campaigns over the two years before
the benchmark's campaigns start, with a known saturating response and seeded noise.

Each channel has a spend ``b`` where returns start to fall off and each (channel, brand) a
scale ``a``; a campaign of spend ``S`` gets ``a · ln(1 + S / b)`` leads (the curve the model
fits), times a log-normal factor of spread ``noise``. Impressions follow their own curve with
the same ``b``; clicks, MQL, SQL and customers are shares of the stage before (each share with
half the noise); every customer buys once at the brand's order value. ``noise = 0`` gives the
exact curve (counts rounded), which the model should recover.

Everything is generated from ``(spec, run)`` alone and inserted the way the KPI dataset is:
campaigns (and the partner budget lines of every third one) through ``warehouse.insert_events``,
the streams as Arrow tables — one lead row per lead at its highest stage.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from clickhouse_connect.driver.client import Client

from mrm.bench.data import meta, money, planning_rows, repeat
from services.measurement import warehouse
from shared.events import EventData
from shared.events.ingest import FUNNEL
from shared.events.planning import BudgetLineSet, CampaignPlanned, PlanCreated
from shared.topics import AD_METRICS, LEADS, SALES, SPEND

HISTORY_END = dt.date(2027, 1, 1)
"""The day the benchmark's campaigns start; every past campaign is over before it."""
CHANNELS = ("paid_search", "social", "display", "email")
HALF_SPEND = (12_000.0, 8_000.0, 20_000.0, 4_000.0)
"""Per channel: ``b``, the spend where its returns start to fall off."""
LEAD_SCALE = (420.0, 300.0, 180.0, 650.0)
"""Per channel: ``a`` of leads for the first brand (each further brand +25 %)."""
IMPRESSIONS_PER_LEAD = (60.0, 400.0, 900.0, 25.0)
CTR = (0.05, 0.012, 0.004, 0.2)
SHARES = (0.5, 0.5, 0.3)
"""Leads → MQL, MQL → SQL, SQL → customer."""
ORDER_VALUE = (400.0, 650.0, 900.0, 1200.0)
"""Per brand: what one customer's order brings, in USD."""
GROSS_MARGIN = Decimal("0.4")
PARTNERS = ("partner-north", "partner-south")
DAYS = 28
SPEND_RANGE = (3_000.0, 80_000.0)
_STAGE_RANK = {stage: rank for rank, stage in enumerate(FUNNEL)}


@dataclass(frozen=True)
class HistorySpec:
    """How large and how noisy the past is."""

    campaigns: int = 300
    noise: float = 0.2
    """Spread (sigma of the log) of the multiplicative noise on each volume; 0 = exact."""
    brands: int = 3
    channels: int = len(CHANNELS)
    years: int = 2
    seed: int = 11


@dataclass(frozen=True)
class PastCampaign:
    """One past campaign and what it gave (what the inserted rows add up to)."""

    campaign_id: str
    channel: str
    brand: str
    partner: str | None
    start: dt.date
    end: dt.date
    spend_cents: int
    impressions: int
    clicks: int
    leads: int
    mql: int
    sql: int
    customers: int
    order_cents: int

    @property
    def spend(self) -> Decimal:
        """Spend in USD."""
        return Decimal(self.spend_cents) / 100

    @property
    def revenue(self) -> Decimal:
        """Revenue in USD: one order per customer."""
        return Decimal(self.customers * self.order_cents) / 100


def brand_name(j: int) -> str:
    """The name of brand ``j``."""
    return f"brand-{chr(ord('a') + j)}"


def expected_leads(channel: int, brand: int, spend: float) -> float:
    """The true curve: leads of a campaign of ``channel`` and ``brand`` spending ``spend``."""
    scale = LEAD_SCALE[channel] * (1 + 0.25 * brand)
    return scale * float(np.log1p(spend / HALF_SPEND[channel]))


def generate(spec: HistorySpec, *, run: str) -> list[PastCampaign]:
    """The past campaigns of ``spec`` (ids unique to ``run``), in start order."""
    if not 1 <= spec.channels <= len(CHANNELS) or not 1 <= spec.brands <= 26:
        raise ValueError(f"channels must be 1-{len(CHANNELS)} and brands 1-26")
    rng = np.random.default_rng(spec.seed)
    first = HISTORY_END - dt.timedelta(days=365 * spec.years)
    span = (HISTORY_END - first).days - DAYS - 1
    out = []
    for k in range(spec.campaigns):
        c, j = k % spec.channels, (k // spec.channels) % spec.brands
        low, high = np.log(SPEND_RANGE[0]), np.log(SPEND_RANGE[1])
        spend = round(float(np.exp(rng.uniform(low, high))), 2)
        factors = np.exp(rng.normal(0.0, spec.noise, 2))
        shares = np.exp(rng.normal(0.0, spec.noise / 2, 4))
        curve = float(np.log1p(spend / HALF_SPEND[c]))
        leads = round(expected_leads(c, j, spend) * factors[0])
        impressions = round(LEAD_SCALE[c] * IMPRESSIONS_PER_LEAD[c] * curve * factors[1])
        mql = min(leads, round(leads * SHARES[0] * shares[0]))
        sql = min(mql, round(mql * SHARES[1] * shares[1]))
        start = first + dt.timedelta(days=span * k // max(1, spec.campaigns - 1))
        out.append(
            PastCampaign(
                campaign_id=f"bench-{run}-past{k:04d}",
                channel=CHANNELS[c],
                brand=brand_name(j),
                partner=PARTNERS[(k // 3) % 2] if k % 3 == 2 else None,
                start=start,
                end=start + dt.timedelta(days=DAYS - 1),
                spend_cents=round(spend * 100),
                impressions=impressions,
                clicks=min(impressions, round(impressions * CTR[c] * shares[2])),
                leads=leads,
                mql=mql,
                sql=sql,
                customers=min(sql, round(sql * SHARES[2] * shares[3])),
                order_cents=round(ORDER_VALUE[j % len(ORDER_VALUE)] * 100),
            )
        )
    return out


def planning_events(past: list[PastCampaign], *, run: str) -> list[EventData]:
    """The past's plan, its campaigns (done) and the partner budget lines they draw from."""
    plan_id = f"bench-{run}-past-plan"
    events: list[EventData] = [
        PlanCreated(
            plan_id=plan_id,
            name="Bench past campaigns",
            period_start=past[0].start if past else HISTORY_END,
            period_end=HISTORY_END - dt.timedelta(days=1),
            currency="USD",
            owner="cmo",
            status="approved",
        )
    ]
    for partner in PARTNERS:
        events.append(
            BudgetLineSet(
                line_id=f"{plan_id}-{partner}",
                plan_id=plan_id,
                name=f"Through {partner}",
                partner=partner,
                amount=Decimal("1000000.00"),
                currency="USD",
            )
        )
    for k, p in enumerate(past):
        events.append(
            CampaignPlanned(
                campaign_id=p.campaign_id,
                plan_id=plan_id,
                name=f"Past campaign {k}",
                channel=p.channel,
                brand=p.brand,
                owner="manager",
                budget=p.spend,
                currency="USD",
                start_date=p.start,
                end_date=p.end,
                gross_margin=GROSS_MARGIN,
                status="completed",
                line_id=f"{plan_id}-{p.partner}" if p.partner else None,
            )
        )
    return events


def _times(starts: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Epoch ms of ``n.sum()`` events: ``n[i]`` spread over the days of campaign ``i``."""
    at = np.repeat(starts, n)
    within = np.concatenate([np.arange(m) for m in n]) if len(n) else np.zeros(0, np.int64)
    total = np.repeat(np.maximum(n, 1), n)
    return at + (within * (DAYS * 86_400_000 - 3_600_000)) // total + 3_600_000


def tables(past: list[PastCampaign], *, run: str) -> dict[str, pa.Table]:
    """The past's spend, ad metrics, lead events and sales as Arrow inserts."""
    ids = pa.array([p.campaign_id for p in past])
    channels = pa.array([p.channel for p in past])
    starts = np.array(
        [int(dt.datetime.combine(p.start, dt.time(), dt.UTC).timestamp() * 1000) for p in past],
        dtype=np.int64,
    )
    parts = 4  # spend and ad metrics: four reports per campaign
    idx = np.repeat(np.arange(len(past)), parts)
    n = np.full(len(past), parts)
    out = {}

    def split(total: np.ndarray) -> np.ndarray:
        """``total`` in ``parts`` integer parts per campaign, the remainder in the last."""
        base = np.repeat(total // parts, parts)
        base[parts - 1 :: parts] += total - (total // parts) * parts
        return base

    rows = len(idx)
    out["spend"] = pa.table(
        {
            **meta(rows, run=run, phase=0x61, topic=SPEND, source="ads", at_ms=_times(starts, n)),
            "campaign_id": ids.take(pa.array(idx)),
            "channel": channels.take(pa.array(idx)),
            "amount": money(split(np.array([p.spend_cents for p in past], dtype=np.int64))),
            "currency": repeat("USD", rows),
        }
    )
    out["ad_metrics"] = pa.table(
        {
            **meta(
                rows, run=run, phase=0x62, topic=AD_METRICS, source="ads", at_ms=_times(starts, n)
            ),
            "campaign_id": ids.take(pa.array(idx)),
            "channel": channels.take(pa.array(idx)),
            "impressions": pa.array(
                split(np.array([p.impressions for p in past])).astype(np.uint64)
            ),
            "clicks": pa.array(split(np.array([p.clicks for p in past])).astype(np.uint64)),
        }
    )
    out["lead_events"] = _lead_table(past, run=run, starts=starts, ids=ids, channels=channels)
    out["sales"] = _sales_table(past, run=run, starts=starts, ids=ids, channels=channels)
    return out


def _lead_table(
    past: list[PastCampaign], *, run: str, starts: np.ndarray, ids: pa.Array, channels: pa.Array
) -> pa.Table:
    """One row per lead at its highest stage: customers, then SQL, MQL and lead only."""
    counts = np.array([p.leads for p in past], dtype=np.int64)
    rows = int(counts.sum())
    idx = np.repeat(np.arange(len(past)), counts)
    n = np.concatenate([np.arange(m) for m in counts]) if rows else np.zeros(0, np.int64)
    bounds = {
        _STAGE_RANK["customer"]: np.array([p.customers for p in past]),
        _STAGE_RANK["sql"]: np.array([p.sql for p in past]),
        _STAGE_RANK["mql"]: np.array([p.mql for p in past]),
    }
    rank = np.full(rows, _STAGE_RANK["lead"], dtype=np.int8)
    for stage_rank in sorted(bounds):  # lowest first: a later stage overwrites
        rank[n < bounds[stage_rank][idx]] = stage_rank
    lead = pc.binary_join_element_wise(
        pc.cast(pa.array(idx), pa.string()), pc.cast(pa.array(n), pa.string()), "-"
    )
    is_customer = pa.array(rank == _STAGE_RANK["customer"])
    columns = {
        **meta(rows, run=run, phase=0x63, topic=LEADS, source="crm", at_ms=_times(starts, counts)),
        "lead_id": pc.binary_join_element_wise(f"past-lead-{run}", lead, "-"),
        "campaign_id": ids.take(pa.array(idx)),
        "channel": channels.take(pa.array(idx)),
        "stage": pa.array(list(FUNNEL)).take(pa.array(rank.astype(np.int32))),
        "stage_rank": pa.array(rank),
        "customer_id": pc.if_else(
            is_customer, pc.binary_join_element_wise(f"past-cust-{run}", lead, "-"), ""
        ),
        "expected_value": pa.nulls(rows, pa.decimal128(18, 2)),
    }
    assert tuple(columns) == warehouse.COLUMNS["lead_events"]
    return pa.table(columns)


def _sales_table(
    past: list[PastCampaign], *, run: str, starts: np.ndarray, ids: pa.Array, channels: pa.Array
) -> pa.Table:
    """One order per customer of each campaign, at its brand's order value."""
    counts = np.array([p.customers for p in past], dtype=np.int64)
    rows = int(counts.sum())
    idx = np.repeat(np.arange(len(past)), counts)
    n = np.concatenate([np.arange(m) for m in counts]) if rows else np.zeros(0, np.int64)
    customer = pc.binary_join_element_wise(
        pc.cast(pa.array(idx), pa.string()), pc.cast(pa.array(n), pa.string()), "-"
    )
    return pa.table(
        {
            **meta(
                rows,
                run=run,
                phase=0x64,
                topic=SALES,
                source="orders",
                at_ms=_times(starts, counts),
            ),
            "order_id": pc.binary_join_element_wise(f"past-order-{run}", customer, "-"),
            "customer_id": pc.binary_join_element_wise(f"past-cust-{run}", customer, "-"),
            "campaign_id": ids.take(pa.array(idx)),
            "channel": channels.take(pa.array(idx)),
            "amount": money(np.array([p.order_cents for p in past], dtype=np.int64)[idx]),
            "discount_amount": money(np.zeros(rows, dtype=np.int64)),
            "currency": repeat("USD", rows),
        }
    )


@dataclass(frozen=True)
class History:
    """The past inserted next to the KPI dataset."""

    spec: HistorySpec
    campaigns: list[PastCampaign]
    rows: dict[str, int]
    """Rows inserted per table."""


def insert_history(client: Client, *, spec: HistorySpec, run: str) -> History:
    """Generate the past of ``spec`` and insert it into ``client``'s current database (not
    merged: the caller merges once, with the rest of its data)."""
    past = generate(spec, run=run)
    warehouse.insert_events(client, events=planning_rows(planning_events(past, run=run)))
    rows = {}
    for table, data in tables(past, run=run).items():
        client.insert_arrow(table, data)
        rows[table] = data.num_rows
    return History(spec=spec, campaigns=past, rows=rows)
