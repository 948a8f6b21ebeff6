"""Trade-marketing analytics: the sales of a period by one dimension — brand, trade partner,
product, region, outlet or channel —, sell-in, sell-out or both, in one reporting currency and
per currency.

Per value of the dimension: orders, revenue, discounts, average check, gross profit and share of
the revenue; for brands and channels also the marketing figures (spend, ROMI, ROI, marketing %
of sales), so that brands and channels read side by side. Every figure comes from
``domain.compute_kpis`` over the value's sums, as a scope's KPIs do; amounts convert as the
company scope's do (``conversion``).

Which value a sale counts under: its own field; a sale without a brand or channel takes its
campaign's (as the channel scope counts a sale without a channel). Spend counts for the brand of
its campaign, or for its own channel (as in the channel scope), whatever the sale kind asked
for: spend is neither sell-in nor sell-out. A spend event names a campaign and a channel only,
so partners, products, regions and outlets have no spend of their own: their marketing figures
are null (``spend_attributed`` false).
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
from services.measurement.warehouse._measures import GROSS, kpis_from, read_gross
from services.measurement.warehouse._sql import (
    Branch,
    Scope,
    Stream,
    fetch,
    in_period,
    money,
    query_params,
)
from shared.money import FxRates

SALES_DIMENSIONS: dict[str, str] = {
    "brand": "if(s.brand != '', s.brand, ifNull(m.brand, ''))",
    "partner": "s.partner_id",
    "product": "s.product_id",
    "region": "s.region",
    "outlet": "s.outlet",
    "channel": "if(s.channel != '', s.channel, m.channel)",
}
"""Dimension → the value a sale counts under ('' = none), ``s`` the sale, ``m`` its campaign."""

SPEND_DIMENSIONS: dict[str, str] = {"brand": "ifNull(m.brand, '')", "channel": "p.channel"}
"""The dimensions spend is attributable to → the value a spend row counts under (``p`` the
spend row, ``m`` its campaign)."""

SALE_KINDS = ("sell_in", "sell_out")

FIGURES = (
    "orders",
    "revenue",
    "discounts",
    "average_check",
    "gross_profit",
    "spend",
    "romi",
    "roi",
    "marketing_pct_of_sales",
)
"""The KPIs of ``domain.compute_kpis`` a row shows (with ``revenue_share`` beside them)."""
_MARKETING = ("spend", "romi", "roi", "marketing_pct_of_sales")
AMOUNTS = ("revenue", "gross_profit", "discounts", "spend")

CAMPAIGNS = "(SELECT campaign_id, gross_margin, brand, channel FROM campaigns FINAL)"


def text(value: str) -> str:
    """A text column as it is (a ``Stream`` field reader)."""
    return value


def sales_stream(key: str, *, sale_kind: str | None, where: str = "1") -> Stream:
    """Per ``key`` (an SQL expression over the sale ``s`` and its campaign ``m``) and currency:
    revenue, gross profit, discounts and orders of the period's sales (of ``sale_kind``) that
    ``where`` keeps — by dimension here, by time bucket in ``trade_series``."""
    kind = "1" if sale_kind is None else "sale_kind = {kind:String}"
    sql = f"""SELECT {key} AS k, s.currency AS c0, sum(s.amount) AS c1,
               sum({GROSS}) AS c2, sum(s.discount_amount) AS c3, count() AS c4
        FROM (SELECT * FROM sales FINAL WHERE {in_period()} AND {kind}) AS s
        LEFT ANY JOIN {CAMPAIGNS} AS m ON m.campaign_id = s.campaign_id
        WHERE {where}
        GROUP BY k, c0"""
    fields = (
        ("currency", text),
        ("revenue", money),
        ("gross_profit", read_gross),
        ("discounts", money),
        ("orders", int),
    )
    return Stream("sales", sql, fields)


def _spend_stream(by: str) -> Stream:
    sql = f"""SELECT {SPEND_DIMENSIONS[by]} AS k, p.currency AS c0, sum(p.amount) AS c1
        FROM (SELECT * FROM spend FINAL WHERE {in_period()}) AS p
        LEFT ANY JOIN {CAMPAIGNS} AS m ON m.campaign_id = p.campaign_id
        GROUP BY k, c0"""
    return Stream("spend", sql, (("currency", text), ("spend", money)))


Shares = Mapping[str, Mapping[str, Any]]
"""Currency → measure fields (sums in that currency, counts)."""


def _figures(
    shares: Shares,
    *,
    total_revenue: Decimal | None,
    conversion: Conversion | None,
    attributed: bool,
    now: dt.datetime,
) -> dict[str, Any]:
    """A row's figures from its shares: converted to the reporting currency with
    ``conversion``, or (``None``) the one share as it is, in its own currency."""
    if conversion is None:
        (fields,) = shares.values()
        amounts: Mapping[str, Any] = fields
    else:
        amounts = converted_amounts(shares, conversion=conversion)
    measures = {
        "orders": sum(fields.get("orders", 0) for fields in shares.values()),
        **{name: amounts.get(name, Decimal(0)) for name in AMOUNTS},
    }
    kpis = kpis_from(measures, dims=None, start=None, end=None, now=now)
    out = {name: kpis[name] for name in FIGURES}
    if not attributed:
        out.update(dict.fromkeys(_MARKETING))
    out["revenue_share"] = domain.ratio(measures["revenue"], total_revenue)
    return out


def _summed(rows: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = defaultdict(int)
    for fields in rows.values():
        for name, value in fields.items():
            total[name] += value
    return dict(total)


def sales_by(
    client: Client,
    *,
    by: str,
    fx: FxRates,
    currency: str | None = None,
    sale_kind: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The sales of [start, end) (of one ``sale_kind`` if given) by dimension ``by``: a row per
    value ('' = the sales without one, listed last as ``None``) and the total, in ``currency``
    (default: ``fx.base``) and per currency (README "Currencies")."""
    if by not in SALES_DIMENSIONS:
        raise ValueError(f"by: must be one of {', '.join(SALES_DIMENSIONS)}")
    if sale_kind is not None and sale_kind not in SALE_KINDS:
        raise ValueError(f"sale_kind: must be one of {', '.join(SALE_KINDS)}")
    now = now or dt.datetime.now(dt.UTC)
    params = {**query_params(Scope(None), start, end), "kind": sale_kind or ""}
    attributed = by in SPEND_DIMENSIONS
    branches: list[Branch] = [(sales_stream(SALES_DIMENSIONS[by], sale_kind=sale_kind), params)]
    if attributed:
        branches.append((_spend_stream(by), params))
    # currency → value → fields
    shares: dict[str, dict[str, dict[str, Any]]] = defaultdict(lambda: defaultdict(dict))
    for rows in fetch(client, branches):
        for value, fields in rows:
            shares[fields.pop("currency")][value].update(fields)
    totals = {c: _summed(rows) for c, rows in shares.items()}
    converting = [c for c, fields in totals.items() if holds_amounts(fields)]
    to = conversion(currencies=converting, target=currency or fx.base, fx=fx)
    total_revenue = converted_amounts(totals, conversion=to)["revenue"]

    def row(mine: Shares, whole: Shares) -> dict[str, Any]:
        by_currency = {
            c: _figures(
                {c: fields},
                total_revenue=whole[c].get("revenue", Decimal(0)),
                conversion=None,
                attributed=attributed,
                now=now,
            )
            for c, fields in sorted(mine.items())
        }
        figures = _figures(
            mine, total_revenue=total_revenue, conversion=to, attributed=attributed, now=now
        )
        return {**figures, "by_currency": by_currency}

    values = sorted({v for rows in shares.values() for v in rows}, key=lambda v: (v == "", v))
    return {
        "by": by,
        "sale_kind": sale_kind,
        "start": start,
        "end": end,
        **to.summary(),
        "spend_attributed": attributed,
        "total": row(totals, totals),
        "rows": [
            {
                "value": value or None,
                **row({c: rows[value] for c, rows in shares.items() if value in rows}, totals),
            }
            for value in values
        ],
    }
