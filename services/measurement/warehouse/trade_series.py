"""Series of one brand, trade partner, product or region: per day or ISO week, its sales —
units, orders, revenue, gross profit, discounts — and, for a brand, the spend, leads, CPL and
ROMI of its campaigns; in one reporting currency and per currency.

A sale counts under a value as in ``trade.sales_by`` (``trade.SALES_DIMENSIONS``: a sale
without a brand takes its campaign's). Spend is attributable by brand (its campaigns' spend) or
channel only — a spend event names a campaign and a channel —, so a partner's, product's or
region's series has no spend, leads, CPL or ROMI (null, ``spend_attributed`` false). A brand's
leads are the distinct leads of its campaigns reaching ``lead`` or later in the bucket, as a
series of those campaigns counts them (``_measures.lead_stream``). ``sale_kind`` narrows the
sales, never the spend or the leads (neither is sell-in or sell-out).

Units are sales: ``sale.completed`` carries no quantity, so each sale is one unit (as in the
uplift); ``orders`` count the same sales and are there for the average check.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client

from services.measurement import domain
from services.measurement.conversion import (
    Conversion,
    conversion,
    converted_amounts,
    holds_amounts,
)
from services.measurement.warehouse._dims import campaign_dims
from services.measurement.warehouse._measures import lead_stream
from services.measurement.warehouse._sql import (
    BUCKETS,
    Branch,
    Scope,
    Stream,
    fetch,
    in_period,
    money,
    query_params,
)
from services.measurement.warehouse.series import MAX_SERIES_BUCKETS, series_buckets
from services.measurement.warehouse.trade import (
    AMOUNTS,
    SALE_KINDS,
    SALES_DIMENSIONS,
    sales_stream,
    text,
)
from shared.money import FxRates

TRADE_SCOPES = ("brand", "partner", "product", "region")
"""The series scopes of the sales dimensions (``id`` names the brand, partner id, product id or
region exactly as the sales carry it)."""

TRADE_SERIES_FIGURES = (
    "units",
    "orders",
    "revenue",
    "gross_profit",
    "discounts",
    "average_check",
    "spend",
    "leads",
    "cpl",
    "romi",
)
_MARKETING = ("spend", "leads", "cpl", "romi")


def _spend_stream(*, bucket: str) -> Stream:
    sql = f"""SELECT {BUCKETS[bucket]}(occurred_at, 'UTC') AS k, currency AS c0,
               sum(amount) AS c1
        FROM spend FINAL WHERE campaign_id IN {{ids:Array(String)}} AND {in_period()}
        GROUP BY k, c0"""
    return Stream("spend", sql, (("currency", text), ("spend", money)))


def _point_figures(
    shares: Mapping[str, Mapping[str, Any]],
    *,
    leads: int | None,
    to: Conversion | None,
) -> dict[str, Any]:
    """A bucket's figures from its per-currency shares: converted with ``to``, or (``None``)
    the one share in its own currency. ``leads`` ``None``: no marketing figures."""
    if to is None:
        (fields,) = shares.values()
        amounts: Mapping[str, Any] = {n: fields.get(n, Decimal(0)) for n in AMOUNTS}
    else:
        amounts = converted_amounts(shares, conversion=to)
    orders = sum(fields.get("orders", 0) for fields in shares.values())
    revenue, gross, spend = amounts["revenue"], amounts["gross_profit"], amounts["spend"]
    out: dict[str, Any] = {
        "units": orders,
        "orders": orders,
        "revenue": domain.money(revenue),
        "gross_profit": domain.money(gross),
        "discounts": domain.money(amounts["discounts"]),
        "average_check": domain.ratio(revenue, orders, places=2),
        **dict.fromkeys(_MARKETING),
    }
    if leads is not None:
        romi = None if spend is None or gross is None else domain.ratio(gross - spend, spend)
        out.update(
            spend=domain.money(spend),
            leads=leads,
            cpl=domain.ratio(spend, leads, places=2),
            romi=romi,
        )
    return out


def trade_series(
    client: Client,
    *,
    scope: str,
    id: str,
    start: dt.datetime,
    end: dt.datetime,
    fx: FxRates,
    currency: str | None = None,
    bucket: str = "day",
    sale_kind: str | None = None,
) -> dict[str, Any]:
    """Units, orders, revenue, gross profit, discounts and average check of one brand, partner,
    product or region per day or week of [start, end) — for a brand also its campaigns' spend,
    leads, CPL and ROMI —, in ``currency`` (default ``fx.base``) and per currency. A value
    without sales gives zeros, not an error: the sales name values freely."""
    if scope not in TRADE_SCOPES:
        raise ValueError(f"scope: must be one of {', '.join(TRADE_SCOPES)}")
    if sale_kind is not None and sale_kind not in SALE_KINDS:
        raise ValueError(f"sale_kind: must be one of {', '.join(SALE_KINDS)}")
    days = series_buckets(start=start, end=end, bucket=bucket)
    if len(days) > MAX_SERIES_BUCKETS:
        raise ValueError(f"to: at most {MAX_SERIES_BUCKETS} {bucket} buckets per series")
    attributed = scope == "brand"
    ids: tuple[str, ...] = ()
    if attributed:
        found = campaign_dims(client, where="brand = {brand:String}", params={"brand": id})
        ids = tuple(d["campaign_id"] for d in found)
    params = {**query_params(Scope(ids), start, end), "value": id, "kind": sale_kind or ""}
    branches: list[Branch] = [
        (
            sales_stream(
                f"{BUCKETS[bucket]}(s.occurred_at, 'UTC')",
                sale_kind=sale_kind,
                where=f"{SALES_DIMENSIONS[scope]} = {{value:String}}",
            ),
            params,
        )
    ]
    if ids:
        branches.append((_spend_stream(bucket=bucket), params))
        branches.append((lead_stream(Scope(ids, bucket=bucket)), params))
    rows = fetch(client, branches)
    # bucket → currency → fields
    shares: dict[dt.date, dict[str, dict[str, Any]]] = defaultdict(lambda: defaultdict(dict))
    for k, fields in [*rows[0], *(rows[1] if ids else ())]:
        shares[dt.date.fromisoformat(k)][fields.pop("currency")].update(fields)
    leads = {dt.date.fromisoformat(k): f["reached1"] for k, f in rows[2]} if ids else {}
    converting = {
        c for per in shares.values() for c, fields in per.items() if holds_amounts(fields)
    }
    to = conversion(currencies=converting, target=currency or fx.base, fx=fx)
    points = []
    for day in days:
        mine = shares.get(day, {})
        count = leads.get(day, 0) if attributed else None
        points.append(
            {
                "start": day,
                **_point_figures(mine, leads=count, to=to),
                "by_currency": {
                    c: _point_figures({c: fields}, leads=None, to=None)
                    | _own_spend(fields, attributed=attributed)
                    for c, fields in sorted(mine.items())
                },
            }
        )
    return {
        "scope": scope,
        "id": id,
        "bucket": bucket,
        "sale_kind": sale_kind,
        "start": start,
        "end": end,
        **to.summary(),
        "spend_attributed": attributed,
        "campaigns": list(ids),
        "points": points,
    }


def _own_spend(fields: Mapping[str, Any], *, attributed: bool) -> dict[str, Any]:
    """A currency share's spend and ROMI, in that currency (leads and CPL are the brand's, not a
    currency's: null under ``by_currency``)."""
    if not attributed:
        return {}
    spend, gross = fields.get("spend", Decimal(0)), fields.get("gross_profit", Decimal(0))
    return {"spend": domain.money(spend), "romi": domain.ratio(gross - spend, spend)}
