"""KPIs of scopes wider than one campaign or plan — a channel, the whole company — and a
campaign compared with its past peers; their amounts in one reporting currency and per currency
(``currencies``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from clickhouse_connect.driver.client import Client

from services.measurement import domain
from services.measurement.warehouse._dims import PLAN, campaign_dims, dims_branches, dims_rows
from services.measurement.warehouse._measures import (
    collect,
    each_campaign,
    kpis_from,
    measure_branches,
)
from services.measurement.warehouse._sql import Scope, fetch
from services.measurement.warehouse.currencies import (
    currencies_branch,
    found_currencies,
    split,
)
from shared.money import FxRates

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


def overlaps(dims: Mapping[str, Any], start: dt.datetime | None, end: dt.datetime | None) -> bool:
    """Whether a campaign's dates (its dimension row) overlap the period [start, end)."""
    begin = dt.datetime.combine(dims["start_date"], dt.time(), dt.UTC)
    finish = dt.datetime.combine(dims["end_date"] + dt.timedelta(days=1), dt.time(), dt.UTC)
    return (end is None or begin < end) and (start is None or finish > start)


def in_currency(
    client: Client,
    *,
    scope: Scope,
    dims: Sequence[Mapping[str, Any]],
    target: str,
    fx: FxRates,
    start: dt.datetime | None,
    end: dt.datetime | None,
    now: dt.datetime,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A multi-campaign scope's currency fields (README "Currencies"), and its KPIs in
    ``target`` with its CKPI (each of ``dims``, the campaigns of the period, judged on its own
    KPIs) and ``by_currency``, the same per currency."""
    measured = each_campaign(
        client,
        scope=scope,
        dims=dims,
        start=start,
        end=end,
        now=now,
        also=[currencies_branch(scope, start=start, end=end)],
    )
    priced = split(
        client,
        scope=scope,
        whole=measured.own,
        found=found_currencies(measured.also[0]),
        dims=dims,
        target=target,
        fx=fx,
        start=start,
        end=end,
    )
    kpis, by_currency = priced.kpis("", dims=dims, start=start, end=end, now=now)
    for currency, theirs in by_currency.items():
        mine = {d["campaign_id"] for d in dims if d["currency"] == currency}
        each = {cid: k for cid, k in measured.each.items() if cid in mine}
        theirs["ckpi"] = domain.plan_ckpi(campaign_kpis=each, targets=measured.targets)
    ckpi = domain.plan_ckpi(campaign_kpis=measured.each, targets=measured.targets)
    return priced.conversion.summary(), {**kpis, "ckpi": ckpi, "by_currency": by_currency}


def channel_kpis(
    client: Client,
    *,
    channel: str,
    fx: FxRates,
    currency: str | None = None,
    plan_id: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any] | None:
    """Every SPEC §4 KPI of one channel (within a plan if given) over [start, end), in
    ``currency`` (default: the plan's, else the default currency ``fx.base``) and per currency.

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
    dims = [d for d in campaigns if overlaps(d, start, end)]
    currencies, kpis = in_currency(
        client,
        scope=Scope(ids, channel=channel),
        dims=dims,
        target=currency or (plan["currency"] if plan else fx.base),
        fx=fx,
        start=start,
        end=end,
        now=now,
    )
    return {
        "channel": channel,
        "plan_id": plan_id,
        **currencies,
        "start": start,
        "end": end,
        "campaigns": sorted(d["campaign_id"] for d in dims),
        **kpis,
    }


def company_kpis(
    client: Client,
    *,
    fx: FxRates,
    currency: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Every SPEC §4 KPI of the whole company over [start, end), unattributed events included,
    in ``currency`` (default: the default currency ``fx.base``) and per currency.

    Budget is that of every campaign overlapping the period; CKPI weighs the targets of those
    campaigns, each judged on its own campaign's KPIs over the period.
    """
    now = now or dt.datetime.now(dt.UTC)
    dims = [d for d in campaign_dims(client, where="1", params={}) if overlaps(d, start, end)]
    currencies, kpis = in_currency(
        client,
        scope=Scope(None),
        dims=dims,
        target=currency or fx.base,
        fx=fx,
        start=start,
        end=end,
        now=now,
    )
    return {
        **currencies,
        "start": start,
        "end": end,
        "campaigns": len(dims),
        **kpis,
    }


def _compared(kpis: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **{k: kpis[k] for k in _COMPARED_KPIS},
        "lead_to_customer": kpis["conversions"]["lead_to_customer"],
    }


def _comparison_row(
    dims: Mapping[str, Any], kpis: Mapping[str, Any], *, matches: Sequence[str]
) -> dict[str, Any]:
    identity = ("campaign_id", "plan_id", "name", "channel", "brand", "status", "currency")
    return {
        **{k: dims[k] for k in identity},
        "start_date": dims["start_date"],
        "end_date": dims["end_date"],
        **_compared(kpis),
        "matches": list(matches),
    }


def _peers(client: Client, *, this: Mapping[str, Any], limit: int) -> list[dict[str, Any]]:
    """Past campaigns sharing ``this`` campaign's channel or brand, most recent first."""
    similar = "channel = {channel:String}"
    params: dict[str, Any] = {
        "cid": this["campaign_id"],
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
    return sorted(
        past, key=lambda d: (d["end_date"], d["start_date"], d["campaign_id"]), reverse=True
    )[:limit]


def compare_campaign(
    client: Client,
    *,
    campaign_id: str,
    fx: FxRates,
    currency: str | None = None,
    limit: int = 10,
    now: dt.datetime | None = None,
) -> dict[str, Any] | None:
    """A campaign next to its past peers (same channel or brand; ended before it started, or
    completed), most recent first, with the peers' pooled KPIs; ``None`` if it is unknown.

    Whole-history KPIs: cost, CPL, ROMI, lead→customer conversion, budget and dates; each
    campaign's in its own currency, the pooled ones in ``currency`` (default: the campaign's)
    and per currency.
    """
    now = now or dt.datetime.now(dt.UTC)
    found = campaign_dims(client, where="campaign_id = {cid:String}", params={"cid": campaign_id})
    if not found:
        return None
    this = found[0]
    peers = _peers(client, this=this, limit=limit)
    ids = (campaign_id, *(d["campaign_id"] for d in peers))
    each_scope = Scope(ids, per_campaign=True)
    peer_scope = Scope(tuple(d["campaign_id"] for d in peers))
    each_branches = measure_branches(each_scope, start=None, end=None)
    peer_branches = measure_branches(peer_scope, start=None, end=None) if peers else []
    also = [currencies_branch(peer_scope, start=None, end=None)] if peers else []
    rows = fetch(client, [*each_branches, *peer_branches, *also])
    each = collect(each_scope, each_branches, rows[: len(each_branches)])

    def row(dims: Mapping[str, Any]) -> dict[str, Any]:
        kpis = kpis_from(
            each.get(dims["campaign_id"], {}), dims=dims, start=None, end=None, now=now
        )
        matches = [k for k in ("channel", "brand") if dims[k] is not None and dims[k] == this[k]]
        return _comparison_row(dims, kpis, matches=matches)

    pooled: dict[str, Any] | None = None
    if peers:
        cut = len(each_branches) + len(peer_branches)
        priced = split(
            client,
            scope=peer_scope,
            whole=collect(peer_scope, peer_branches, rows[len(each_branches) : cut]),
            found=found_currencies(rows[cut]),
            dims=peers,
            target=currency or this["currency"],
            fx=fx,
            start=None,
            end=None,
        )
        kpis, by_currency = priced.kpis("", dims=peers, start=None, end=None, now=now)
        pooled = {
            **priced.conversion.summary(),
            **_compared(kpis),
            "by_currency": {c: _compared(k) for c, k in by_currency.items()},
        }
    return {"campaign": row(this), "peers": [row(d) for d in peers], "peers_pooled": pooled}
