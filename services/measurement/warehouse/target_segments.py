"""Segment effectiveness: the campaigns grouped by the customer segment they aim at (their
``target_segment``, '' = no target), each group measured as one scope, side by side.

A group is a scope of campaigns like a channel's or the company's (``scopes``): its events are
those attributed to its campaigns, a lead or buyer of two of its campaigns counts once, its
amounts are converted to one reporting currency and kept per currency as well. Only campaigns
overlapping the period take part; their events in the period count.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client

from services.measurement.warehouse._dims import PLAN, dims_branches, dims_rows
from services.measurement.warehouse._sql import Scope, fetch
from services.measurement.warehouse.scopes import in_currency, overlaps
from shared.money import FxRates

_COMPARED = (
    "spend",
    "budget",
    "leads",
    "new_customers",
    "customers",
    "revenue",
    "gross_profit",
    "cpl",
    "cac",
    "romi",
)
_LISTED = ("campaign_id", "plan_id", "name", "channel", "brand", "status", "currency")


def effectiveness_of(kpis: Mapping[str, Any]) -> dict[str, Any]:
    """What a segment comparison shows of a scope's KPIs: volumes, money, CPL, CAC, ROMI and
    the lead → customer conversion."""
    return {
        **{k: kpis[k] for k in _COMPARED},
        "mql": kpis["funnel"]["mql"],
        "sql": kpis["funnel"]["sql"],
        "lead_to_customer": kpis["conversions"]["lead_to_customer"],
    }


def _listed(dims: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **{k: dims[k] for k in _LISTED},
        "start_date": dims["start_date"],
        "end_date": dims["end_date"],
    }


def segment_effectiveness(
    client: Client,
    *,
    fx: FxRates,
    currency: str | None = None,
    plan_id: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any] | None:
    """Per target segment (and ``None``: no target), the campaigns overlapping [start, end)
    that aim at it (within a plan if given) and their KPIs over the period, in ``currency``
    (default: the plan's, else ``fx.base``) and per currency. Segments are sorted by name, no
    target last; a segment's campaigns by start date and name. ``None`` when ``plan_id`` names
    no known plan."""
    now = now or dt.datetime.now(dt.UTC)
    where, params = "1", {}
    if plan_id is not None:
        where, params = "plan_id = {pid:String}", {"pid": plan_id}
    lookups = dims_branches(where=where, params=params)
    if plan_id is not None:
        lookups.append((PLAN, {"pid": plan_id}))
    found = fetch(client, lookups)
    campaigns = dims_rows(found[:3])
    plan = next(({"plan_id": k, **f} for k, f in found[3]), None) if plan_id else None
    if plan_id is not None and plan is None and not campaigns:
        return None
    target = currency or (plan["currency"] if plan else fx.base)
    groups: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for d in campaigns:
        if overlaps(d, start, end):
            groups[d["target_segment"]].append(d)
    rates: dict[str, Decimal] = {}
    missing: set[str] = set()
    segments = []
    for segment in sorted(groups, key=lambda name: (name is None, name or "")):
        members = groups[segment]
        ids = tuple(d["campaign_id"] for d in members)
        summary, kpis = in_currency(
            client,
            scope=Scope(ids),
            dims=members,
            target=target,
            fx=fx,
            start=start,
            end=end,
            now=now,
        )
        rates.update(summary["fx_rates"])
        missing.update(summary["missing_rates"])
        segments.append(
            {
                "target_segment": segment,
                "campaigns": [
                    _listed(d) for d in sorted(members, key=lambda d: (d["start_date"], d["name"]))
                ],
                **effectiveness_of(kpis),
                "missing_rates": summary["missing_rates"],
                "by_currency": {c: effectiveness_of(k) for c, k in kpis["by_currency"].items()},
            }
        )
    return {
        "plan_id": plan_id,
        "currency": target,
        "fx_rates": dict(sorted(rates.items())),
        "missing_rates": sorted(missing),
        "start": start,
        "end": end,
        "segments": segments,
    }
