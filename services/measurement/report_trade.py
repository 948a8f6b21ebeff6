"""The plan report's trade-marketing sections — sales and spend by brand, sales by trade partner
(sell-in vs sell-out), RFM segment sizes — over the report's days: pure HTML, no I/O.

Input is what the API already answers: ``warehouse.sales_by`` (by brand; by partner in all,
sell-in and sell-out), ``segments.overview`` and the plan's per-campaign KPIs. Sales are the
company's (a sell-in rarely names a campaign), in the plan's currency; "Plan spend" is the spend
of the plan's own campaigns of each brand over the report's period, next to the spend of all
the brand's campaigns. Each row carries ``data-row`` so that it can be found in the page.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from decimal import Decimal
from html import escape
from typing import Any

from services.measurement.report import Kind, display
from services.measurement.report_charts import hbar_chart

NONE_LABEL = "(none)"
"""How a row of the sales without a brand or partner is named."""


def _days(days: tuple[dt.date, dt.date]) -> str:
    return f"{days[0].isoformat()} – {days[1].isoformat()} (UTC days)"


def _rows_table(
    header: Sequence[str], rows: Sequence[tuple[str, Sequence[tuple[Any, Kind]]]]
) -> str:
    head = "".join(
        f'<th class="text">{escape(h)}</th>' if i == 0 else f"<th>{escape(h)}</th>"
        for i, h in enumerate(header)
    )
    body = "".join(
        f'<tr data-row="{escape(name)}"><td class="text">{escape(name)}</td>'
        + "".join(f"<td>{escape(display(value, kind))}</td>" for value, kind in cells)
        + "</tr>"
        for name, cells in rows
    )
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def plan_spend_by_brand(
    *, campaigns: Sequence[Mapping[str, Any]], daily: Sequence[Mapping[str, Any]]
) -> dict[str, Decimal]:
    """Σ spend of the plan's campaigns per brand ('' = campaigns without one), from the plan's
    spend per day and campaign (``warehouse.plan_daily_spend`` over the report's days); every
    brand of the plan's campaigns is listed, zero included."""
    brand_of = {str(c["campaign_id"]): str(c.get("brand") or "") for c in campaigns}
    out: dict[str, Decimal] = defaultdict(Decimal)
    for brand in brand_of.values():
        out[brand] += 0
    for row in daily:
        out[brand_of.get(str(row["campaign_id"]), "")] += Decimal(row["spend"])
    return dict(out)


def brand_section(
    *,
    brands: Mapping[str, Any],
    plan_spend: Mapping[str, Decimal],
    days: tuple[dt.date, dt.date],
) -> str:
    """Sales and spend by brand: revenue per brand (chart) and a row per brand — the brands of
    the company's sales and those of the plan's campaigns (``plan_spend_by_brand``)."""
    rows_by_value = {r["value"] or "": r for r in brands.get("rows") or ()}
    names = sorted(set(rows_by_value) | set(plan_spend), key=lambda v: (v == "", v))
    rows = []
    for value in names:
        row = rows_by_value.get(value, {})
        cells: list[tuple[Any, Kind]] = [
            (row.get("orders", 0), "count"),
            (row.get("revenue"), "money"),
            (row.get("discounts"), "money"),
            (row.get("gross_profit"), "money"),
            (row.get("revenue_share"), "percent"),
            (plan_spend.get(value, Decimal(0)), "money"),
            (row.get("spend"), "money"),
            (row.get("romi"), "percent"),
        ]
        rows.append((value or NONE_LABEL, cells))
    chart = hbar_chart(
        chart="brand-revenue",
        label="Revenue per brand",
        rows=[(r["value"] or NONE_LABEL, r.get("revenue")) for r in brands.get("rows") or ()],
        kind="money",
        empty="No sales",
    )
    header = [
        "Brand",
        "Orders",
        "Revenue",
        "Discounts",
        "Gross profit",
        "Share of revenue",
        "Plan spend",
        "All campaigns' spend",
        "ROMI",
    ]
    note = (
        f"All sales of {_days(days)} in {brands.get('currency')}, by the sale's brand (else its "
        "campaign's). Plan spend: the spend of this plan's campaigns of the brand; all "
        "campaigns' spend and ROMI: of every campaign of the brand. Spend is attributable by "
        "brand or channel only."
    )
    return (
        '<section id="brands"><h2>Sales and spend by brand</h2>'
        f'<p class="meta">{escape(note)}</p>{chart}{_rows_table(header, rows)}</section>'
    )


def partner_section(
    *,
    total: Mapping[str, Any],
    sell_in: Mapping[str, Any],
    sell_out: Mapping[str, Any],
    days: tuple[dt.date, dt.date],
) -> str:
    """Sales by trade partner, sell-in next to sell-out (the sales without a partner last)."""

    def by_value(answer: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
        return {r["value"] or "": r for r in answer.get("rows") or ()}

    every, ins, outs = by_value(total), by_value(sell_in), by_value(sell_out)
    rows = []
    for value in sorted(every, key=lambda v: (v == "", v)):
        i, o, a = ins.get(value, {}), outs.get(value, {}), every[value]
        cells: list[tuple[Any, Kind]] = [
            (i.get("orders", 0), "count"),
            (i.get("revenue", Decimal(0)), "money"),
            (o.get("orders", 0), "count"),
            (o.get("revenue", Decimal(0)), "money"),
            (a.get("revenue"), "money"),
            (a.get("discounts"), "money"),
            (a.get("revenue_share"), "percent"),
        ]
        rows.append((value or NONE_LABEL, cells))
    chart = hbar_chart(
        chart="partner-revenue",
        label="Revenue per partner",
        rows=[(r["value"] or NONE_LABEL, r.get("revenue")) for r in total.get("rows") or ()],
        kind="money",
        empty="No sales",
    )
    header = [
        "Partner",
        "Sell-in orders",
        "Sell-in",
        "Sell-out orders",
        "Sell-out",
        "Revenue",
        "Discounts",
        "Share of revenue",
    ]
    note = (
        f"All sales of {_days(days)} in {total.get('currency')}. Sell-in: to the partner; "
        "sell-out: the partner's to consumers; revenue also counts sales of no stated kind. "
        "Partners have no spend of their own."
    )
    return (
        '<section id="partners"><h2>Sales by partner</h2>'
        f'<p class="meta">{escape(note)}</p>{chart}{_rows_table(header, rows)}</section>'
    )


def segment_section(*, overview: Mapping[str, Any], days: tuple[dt.date, dt.date]) -> str:
    """RFM segment sizes of the customers who bought in the report's days."""
    sizes: Mapping[str, int] = overview.get("segments") or {}
    whole = overview.get("customers") or 0
    rows: list[tuple[str, list[tuple[Any, Kind]]]] = [
        (name, [(count, "count"), (_share(count, whole), "percent")])
        for name, count in sizes.items()
    ]
    chart = hbar_chart(
        chart="segment-sizes",
        label="Customers per RFM segment",
        rows=list(sizes.items()),
        kind="count",
        empty="No customers",
    )
    unscored = overview.get("unconverted_customers") or 0
    note = (
        f"The {overview.get('customers', 0)} customers with a sale in {_days(days)}, scored 1–5 "
        "on recency, frequency and monetary value (in "
        f"{overview.get('currency')}) as GET /api/v1/segments/rfm scores them"
        + (f"; {unscored} left unscored (no FX rate)" if unscored else "")
        + "."
    )
    return (
        '<section id="segments"><h2>Customer segments (RFM)</h2>'
        f'<p class="meta">{escape(note)}</p>{chart}'
        f"{_rows_table(['Segment', 'Customers', 'Share'], rows)}</section>"
    )


def target_segment_section(
    *, effectiveness: Mapping[str, Any] | None, days: tuple[dt.date, dt.date]
) -> str:
    """The plan's campaigns grouped by the customer segment they target, side by side (as
    GET /api/v1/segments/effectiveness?plan_id= compares them)."""
    groups: Sequence[Mapping[str, Any]] = (effectiveness or {}).get("segments") or []
    currency = (effectiveness or {}).get("currency") or ""
    rows: list[tuple[str, list[tuple[Any, Kind]]]] = [
        (
            group["target_segment"] or "(no target)",
            [
                (len(group["campaigns"]), "count"),
                (group["spend"], "money"),
                (group["leads"], "count"),
                (group["new_customers"], "count"),
                (group["revenue"], "money"),
                (group["cpl"], "money"),
                (group["cac"], "money"),
                (group["romi"], "percent"),
                (group["lead_to_customer"], "percent"),
            ],
        )
        for group in groups
    ]
    header = ["Target segment", "Campaigns", f"Spend ({currency})", "Leads", "New customers"]
    header += [f"Revenue ({currency})", "CPL", "CAC", "ROMI", "Lead → customer"]
    note = (
        f"The plan's campaigns running in {_days(days)}, grouped by their target segment; "
        "each group measured as one scope (a lead or buyer of two of its campaigns counts once)."
    )
    body = _rows_table(header, rows) if rows else '<p class="meta">No campaigns in these days.</p>'
    return (
        '<section id="target-segments"><h2>Target segments</h2>'
        f'<p class="meta">{escape(note)}</p>{body}</section>'
    )


def _share(part: int, whole: int) -> Decimal | None:
    return None if not whole else (Decimal(part) / whole).quantize(Decimal("1e-6"))


def no_period_section() -> str:
    """In place of the three sections when the report has no days (no period known)."""
    return (
        '<section id="brands"><h2>Brands, partners and segments</h2><p class="meta">'
        "No period: give from and to, or a plan period, to see sales by brand and partner "
        "and the customer segments.</p></section>"
    )
