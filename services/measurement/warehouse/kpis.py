"""KPIs of a campaign, of several campaigns at once, of a plan with its per-campaign breakdown,
a funnel, and the lookups of KPI targets and campaign currencies."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client

from services.measurement import domain
from services.measurement.warehouse._dims import (
    PLAN,
    TARGETS,
    dims_branches,
    dims_rows,
    target_rows,
)
from services.measurement.warehouse._measures import (
    collect,
    each_campaign,
    kpis_from,
    lead_stream,
    measure_branches,
)
from services.measurement.warehouse._sql import Scope, fetch, query_params, suffixed


def campaign_kpis(
    client: Client,
    *,
    campaign_id: str,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Every SPEC §4 KPI of one campaign over [start, end), with its CKPI and identity.

    One query: the measure streams, the campaign's dimensions and its targets together."""
    now = now or dt.datetime.now(dt.UTC)
    scope = Scope((campaign_id,))
    measured = measure_branches(scope, start=start, end=end)
    lookups = [
        *dims_branches(where="campaign_id = {cid:String}", params={"cid": campaign_id}),
        (TARGETS, {"ids": [campaign_id]}),
    ]
    rows = fetch(client, [*measured, *lookups])
    n = len(measured)
    fields = collect(scope, measured, rows[:n]).get("", {})
    dims = next(iter(dims_rows(rows[n : n + 3])), None)
    return _campaign_row(
        campaign_id,
        fields,
        dims=dims,
        targets=target_rows(rows[-1]),
        start=start,
        end=end,
        now=now,
    )


def campaigns_kpis(
    client: Client, *, campaign_ids: Sequence[str], now: dt.datetime | None = None
) -> dict[str, dict[str, Any]]:
    """campaign_id → what ``campaign_kpis`` gives for its whole history, for several campaigns
    in one query (every measure stream grouped by campaign, their dimensions and targets) —
    the target monitor's round and snapshots."""
    now = now or dt.datetime.now(dt.UTC)
    ids = tuple(dict.fromkeys(campaign_ids))
    if not ids:
        return {}
    scope = Scope(ids, per_campaign=True)
    measured = measure_branches(scope, start=None, end=None)
    lookups = [
        *dims_branches(where="campaign_id IN {ids:Array(String)}", params={"ids": list(ids)}),
        (TARGETS, {"ids": list(ids)}),
    ]
    rows = fetch(client, [*measured, *lookups])
    n = len(measured)
    each = collect(scope, measured, rows[:n])
    dims = {d["campaign_id"]: d for d in dims_rows(rows[n : n + 3])}
    targets: dict[str, list[domain.Target]] = defaultdict(list)
    for target in target_rows(rows[-1]):
        targets[target.campaign_id].append(target)
    return {
        cid: _campaign_row(
            cid,
            each.get(cid, {}),
            dims=dims.get(cid),
            targets=targets.get(cid, []),
            start=None,
            end=None,
            now=now,
        )
        for cid in ids
    }


def _campaign_row(
    campaign_id: str,
    fields: Mapping[str, Any],
    *,
    dims: Mapping[str, Any] | None,
    targets: Sequence[domain.Target],
    start: dt.datetime | None,
    end: dt.datetime | None,
    now: dt.datetime,
) -> dict[str, Any]:
    kpis = kpis_from(fields, dims=dims, start=start, end=end, now=now)
    return {
        "campaign_id": campaign_id,
        "plan_id": dims["plan_id"] if dims else None,
        "name": dims["name"] if dims else None,
        "status": dims["status"] if dims else None,
        "currency": dims["currency"] if dims else None,
        "start": start,
        "end": end,
        **kpis,
        "ckpi": domain.ckpi(kpis=kpis, targets=targets),
    }


def plan_kpis(
    client: Client,
    *,
    plan_id: str,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """KPIs of a plan (its campaigns as one scope) and a per-campaign breakdown.

    Two queries: the plan and its campaigns; then every measure stream grouped by campaign
    (plus whole-plan branches for the distinct counts) with the campaigns' targets."""
    now = now or dt.datetime.now(dt.UTC)
    found = fetch(
        client,
        [
            *dims_branches(where="plan_id = {pid:String}", params={"pid": plan_id}),
            (PLAN, {"pid": plan_id}),
        ],
    )
    dims = dims_rows(found[:3])
    plan = next(({"plan_id": k, **f} for k, f in found[3]), None)
    ids = tuple(d["campaign_id"] for d in dims)
    scope = Scope(ids, per_campaign=True, with_total=True)
    measures, each, targets, _ = each_campaign(
        client, scope=scope, dims=dims, start=start, end=end, now=now
    )
    budget = sum((d["budget"] for d in dims), Decimal(0)) if dims else None
    plan_dims = {
        "budget": budget,
        "start_date": plan["period_start"] if plan else None,
        "end_date": plan["period_end"] if plan else None,
    }
    breakdown = []
    for d in dims:
        kpis = each[d["campaign_id"]]
        mine = [t for t in targets if t.campaign_id == d["campaign_id"]]
        identity = {k: d[k] for k in ("campaign_id", "name", "channel", "brand", "status")}
        breakdown.append({**identity, **kpis, "ckpi": domain.ckpi(kpis=kpis, targets=mine)})
    kpis = kpis_from(measures.get("", {}), dims=plan_dims, start=start, end=end, now=now)
    return {
        "plan_id": plan_id,
        "name": plan["name"] if plan else None,
        "status": plan["status"] if plan else None,
        "currency": plan["currency"] if plan else (dims[0]["currency"] if dims else None),
        "start": start,
        "end": end,
        **kpis,
        "ckpi": domain.plan_ckpi(campaign_kpis=each, targets=targets),
        "campaigns": breakdown,
    }


def funnel(
    client: Client,
    *,
    campaign_id: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> dict[str, Any]:
    """Distinct leads reaching each stage or later, lost leads and conversions (None = company)."""
    scope = Scope(None if campaign_id is None else (campaign_id,))
    stream = lead_stream(scope, unbounded=start is None and end is None)
    sql = suffixed(stream.sql, 0)
    params = {f"{k}_0": v for k, v in query_params(scope, start, end).items()}
    rows = client.query(sql, parameters=params).result_rows
    n = len(domain.FUNNEL_STAGES)
    reached = tuple(int(x) for x in rows[0][1 : n + 1]) if rows else (0,) * n
    return {
        "campaign_id": campaign_id,
        "start": start,
        "end": end,
        "stages": dict(zip(domain.FUNNEL_STAGES, reached, strict=True)),
        "lost": int(rows[0][n + 1]) if rows else 0,
        "conversions": domain.funnel_conversions(reached),
    }


def _targets(client: Client, *, campaign_ids: Sequence[str]) -> list[domain.Target]:
    return target_rows(fetch(client, [(TARGETS, {"ids": list(campaign_ids)})])[0])


def kpi_targets(client: Client, *, campaign_id: str) -> list[domain.Target]:
    """The latest KPI targets of a campaign, ordered by target_id."""
    return _targets(client, campaign_ids=[campaign_id])


def targets_by_campaign(
    client: Client, *, campaign_ids: Sequence[str]
) -> dict[str, list[domain.Target]]:
    """campaign_id → its KPI targets, for those of ``campaign_ids`` that have any (one query)."""
    out: dict[str, list[domain.Target]] = defaultdict(list)
    for target in _targets(client, campaign_ids=campaign_ids) if campaign_ids else ():
        out[target.campaign_id].append(target)
    return dict(out)


def campaign_currencies(client: Client, *, campaign_ids: Sequence[str]) -> dict[str, str]:
    """campaign_id → currency of the campaigns known among ``campaign_ids``."""
    if not campaign_ids:
        return {}
    sql = """SELECT campaign_id, currency FROM campaigns_current
        WHERE campaign_id IN {ids:Array(String)}"""
    rows = client.query(sql, parameters={"ids": list(campaign_ids)}).result_rows
    return {cid: currency for cid, currency in rows}
