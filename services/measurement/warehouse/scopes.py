"""KPIs of scopes wider than one campaign or plan — a channel, the whole company — and a
campaign compared with its past peers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client

from services.measurement import domain
from services.measurement.warehouse._dims import PLAN, campaign_dims, dims_branches, dims_rows
from services.measurement.warehouse._measures import each_campaign, fetch_measures, kpis_from
from services.measurement.warehouse._sql import Scope, fetch

_COMPARED_KPIS = (
    "spend",
    "leads",
    "cpl",
    "new_customers",
    "cac",
    "revenue",
    "romi",
    "budget",
    "budget_utilisation",
)


def _overlaps(dims: Mapping[str, Any], start: dt.datetime | None, end: dt.datetime | None) -> bool:
    begin = dt.datetime.combine(dims["start_date"], dt.time(), dt.UTC)
    finish = dt.datetime.combine(dims["end_date"] + dt.timedelta(days=1), dt.time(), dt.UTC)
    return (end is None or begin < end) and (start is None or finish > start)


def _pooled_dims(dims: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Budget and dates of several campaigns taken as one (budget None without campaigns)."""
    if not dims:
        return {"budget": None, "start_date": None, "end_date": None}
    return {
        "budget": sum((d["budget"] for d in dims), Decimal(0)),
        "start_date": min(d["start_date"] for d in dims),
        "end_date": max(d["end_date"] for d in dims),
    }


def _single_currency(dims: Sequence[Mapping[str, Any]]) -> str | None:
    currencies = {d["currency"] for d in dims}
    return currencies.pop() if len(currencies) == 1 else None


def channel_kpis(
    client: Client,
    *,
    channel: str,
    plan_id: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any] | None:
    """Every SPEC §4 KPI of one channel (within a plan if given) over [start, end).

    Spend, ad metrics and lead events count by their own channel; a sale by its own channel,
    else its campaign's. Budget is that of the channel's campaigns overlapping the period; CKPI
    weighs those campaigns' targets, each judged on its own campaign's KPIs over the period.
    ``None`` when ``plan_id`` names no known plan.
    """
    now = now or dt.datetime.now(dt.UTC)
    channel = channel.strip().lower()
    where, params = "channel = {channel:String}", {"channel": channel}
    if plan_id is not None:
        where, params = f"{where} AND plan_id = {{pid:String}}", {**params, "pid": plan_id}
    lookups = dims_branches(where=where, params=params)
    if plan_id is not None:
        lookups += [
            (PLAN, {"pid": plan_id}),
            *dims_branches(where="plan_id = {pid:String}", params={"pid": plan_id}),
        ]
    found = fetch(client, lookups)
    campaigns = dims_rows(found[:3])
    plan = None
    ids: tuple[str, ...] | None = None
    if plan_id is not None:
        plan = next(({"plan_id": k, **f} for k, f in found[3]), None)
        ids = tuple(d["campaign_id"] for d in dims_rows(found[4:7]))
        if plan is None and not ids:
            return None
    dims = [d for d in campaigns if _overlaps(d, start, end)]
    measures, each, targets = each_campaign(
        client, scope=Scope(ids, channel=channel), dims=dims, start=start, end=end, now=now
    )
    kpis = kpis_from(measures.get("", {}), dims=_pooled_dims(dims), start=start, end=end, now=now)
    return {
        "channel": channel,
        "plan_id": plan_id,
        "currency": plan["currency"] if plan else _single_currency(dims),
        "start": start,
        "end": end,
        "campaigns": sorted(d["campaign_id"] for d in dims),
        **kpis,
        "ckpi": domain.plan_ckpi(campaign_kpis=each, targets=targets),
    }


def company_kpis(
    client: Client,
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Every SPEC §4 KPI of the whole company over [start, end), unattributed events included.

    Budget is that of every campaign overlapping the period; CKPI weighs the targets of those
    campaigns, each judged on its own campaign's KPIs over the period.
    """
    now = now or dt.datetime.now(dt.UTC)
    dims = [d for d in campaign_dims(client, where="1", params={}) if _overlaps(d, start, end)]
    measures, each, targets = each_campaign(
        client, scope=Scope(None), dims=dims, start=start, end=end, now=now
    )
    kpis = kpis_from(measures.get("", {}), dims=_pooled_dims(dims), start=start, end=end, now=now)
    return {
        "currency": _single_currency(dims),
        "start": start,
        "end": end,
        "campaigns": len(dims),
        **kpis,
        "ckpi": domain.plan_ckpi(campaign_kpis=each, targets=targets),
    }


def _comparison_row(
    dims: Mapping[str, Any], kpis: Mapping[str, Any], *, matches: Sequence[str]
) -> dict[str, Any]:
    identity = ("campaign_id", "plan_id", "name", "channel", "brand", "status")
    return {
        **{k: dims[k] for k in identity},
        "start_date": dims["start_date"],
        "end_date": dims["end_date"],
        **{k: kpis[k] for k in _COMPARED_KPIS},
        "lead_to_customer": kpis["conversions"]["lead_to_customer"],
        "matches": list(matches),
    }


def compare_campaign(
    client: Client, *, campaign_id: str, limit: int = 10, now: dt.datetime | None = None
) -> dict[str, Any] | None:
    """A campaign next to its past peers (same channel or brand; ended before it started, or
    completed), most recent first, with the peers' pooled KPIs; ``None`` if it is unknown.

    Whole-history KPIs: cost, CPL, ROMI, lead→customer conversion, budget and dates.
    """
    now = now or dt.datetime.now(dt.UTC)
    found = campaign_dims(client, where="campaign_id = {cid:String}", params={"cid": campaign_id})
    if not found:
        return None
    this = found[0]
    similar = "channel = {channel:String}"
    params: dict[str, Any] = {
        "cid": campaign_id,
        "channel": this["channel"],
    }
    if this["brand"] is not None:
        similar = f"({similar} OR brand = {{brand:String}})"
        params["brand"] = this["brand"]
    where = f"campaign_id != {{cid:String}} AND {similar}"
    past = [
        d
        for d in campaign_dims(client, where=where, params=params)
        if d["end_date"] < this["start_date"] or d["status"] == "completed"
    ]
    peers = sorted(
        past, key=lambda d: (d["end_date"], d["start_date"], d["campaign_id"]), reverse=True
    )[:limit]
    ids = (campaign_id, *(d["campaign_id"] for d in peers))
    each = fetch_measures(client, scope=Scope(ids, per_campaign=True), start=None, end=None)

    def row(dims: Mapping[str, Any]) -> dict[str, Any]:
        kpis = kpis_from(
            each.get(dims["campaign_id"], {}), dims=dims, start=None, end=None, now=now
        )
        matches = [k for k in ("channel", "brand") if dims[k] is not None and dims[k] == this[k]]
        return _comparison_row(dims, kpis, matches=matches)

    pooled: dict[str, Any] = {}
    if peers:
        peer_scope = Scope(tuple(d["campaign_id"] for d in peers))
        fields = fetch_measures(client, scope=peer_scope, start=None, end=None).get("", {})
        kpis = kpis_from(fields, dims=_pooled_dims(peers), start=None, end=None, now=now)
        pooled = {k: kpis[k] for k in _COMPARED_KPIS}
        pooled["lead_to_customer"] = kpis["conversions"]["lead_to_customer"]
    return {
        "campaign": row(this),
        "peers": [row(d) for d in peers],
        "peers_pooled": pooled or None,
    }
