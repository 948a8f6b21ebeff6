"""The plan report as one self-contained HTML document: inline CSS, the charts of
``report_charts``, the sections of ``report_sections``, ``report_models`` and ``report_trade``;
its Content-Security-Policy forbids anything fetched, every text is escaped."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from services.measurement.report import (
    COLUMNS,
    SECTIONS,
    campaign_label,
    channel_efficiency,
    display,
    period_label,
    spend_series,
    value_of,
)
from services.measurement.report_charts import (
    PALETTE,
    cumulative_spend_chart,
    daily_spend_chart,
    funnel_chart,
    hbar_chart,
    spend_budget_chart,
)

# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #0f172a; margin: 24px auto; max-width: 1180px; padding: 0 16px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px;
  border-bottom: 1px solid #e2e8f0; padding-bottom: 4px; }
h3 { font-size: 14px; margin: 14px 0 4px; }
.meta, .muted { color: #64748b; fill: #64748b; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 16px 0; }
.card { border: 1px solid #e2e8f0; border-radius: 8px; padding: 8px 14px; min-width: 130px; }
.card b { display: block; font-size: 18px; } .card span { color: #64748b; font-size: 12px; }
svg.chart { display: block; max-width: 100%; height: auto; margin: 4px 0 12px; }
svg text { font-size: 12px; fill: #0f172a; } svg text.tick { fill: #64748b; font-size: 11px; }
svg text.over { fill: #b91c1c; font-weight: 600; }
svg .axis { stroke: #475569; } svg .grid { stroke: #e2e8f0; }
svg .line { stroke-width: 1.5; } svg .line.total { stroke-width: 3; }
svg .budget-line { stroke: #b91c1c; stroke-dasharray: 6 4; stroke-width: 1.5; }
.legend { list-style: none; padding: 0; margin: 0 0 8px; display: flex; flex-wrap: wrap;
  gap: 14px; }
.legend i { display: inline-block; width: 12px; height: 12px; margin-right: 5px;
  vertical-align: -1px; border-radius: 2px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 16px; }
th, td { border-bottom: 1px solid #e2e8f0; padding: 4px 10px; text-align: right;
  white-space: nowrap; }
th:first-child, td.text { text-align: left; } td.text { white-space: normal; }
thead th { background: #f8fafc; position: sticky; top: 0; }
tr.section th { text-align: left; background: #f1f5f9; }
td.total, th.total { font-weight: 600; background: #f8fafc; }
td.node { white-space: nowrap; } tr.plan td { font-weight: 600; background: #f8fafc; }
tr.campaign td { color: #475569; } td.risk { color: #b91c1c; font-weight: 600; }
th.month { text-align: center; }
footer { margin-top: 28px; color: #64748b; font-size: 12px; }
@media print { .scroll { overflow: visible; } h2 { break-after: avoid; }
  svg { break-inside: avoid; } }
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _cards(plan: Mapping[str, Any], currency: str) -> str:
    cards = [
        ("Spend", display(plan.get("spend"), "money") + f" {currency}"),
        ("Budget", display(plan.get("budget"), "money") + f" {currency}"),
        ("Budget used", display(plan.get("budget_utilisation"), "percent")),
        ("Leads", display(plan.get("leads"), "count")),
        ("CPL", display(plan.get("cpl"), "money")),
        ("New customers", display(plan.get("new_customers"), "count")),
        ("CAC", display(plan.get("cac"), "money")),
        ("Revenue", display(plan.get("revenue"), "money")),
        ("ROMI", display(plan.get("romi"), "percent")),
        ("CKPI", display(plan.get("ckpi"), "score")),
    ]
    items = "".join(
        f'<div class="card"><span>{escape(k)}</span><b>{escape(v)}</b></div>' for k, v in cards
    )
    return f'<section class="cards">{items}</section>'


def _legend(names: Mapping[str, str], colors: Mapping[str, str]) -> str:
    items = "".join(
        f'<li><i style="background:{colors[cid]}"></i>{escape(name)}</li>'
        for cid, name in names.items()
    )
    items += '<li><i style="background:#0f172a"></i>plan total</li>'
    return f'<ul class="legend">{items}</ul>'


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], *, text_cols: int = 1) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="text">{escape(v)}</td>' if i < text_cols else f"<td>{escape(v)}</td>"
            for i, v in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _campaign_table(campaigns: Sequence[Mapping[str, Any]], plan: Mapping[str, Any]) -> str:
    keys = ("budget", "spend", "budget_utilisation", "leads", "cpl", "cac", "revenue", "romi")
    picked = [c for c in COLUMNS if c.key in keys] + [c for c in COLUMNS if c.key == "ckpi"]
    header = ["Campaign", "ID", "Channel", "Brand", "Status", *(c.label for c in picked)]
    rows = [
        [
            campaign_label(c),
            str(c.get("campaign_id") or ""),
            str(c.get("channel") or ""),
            str(c.get("brand") or ""),
            str(c.get("status") or ""),
            *(display(value_of(c, col), col.kind) for col in picked),
        ]
        for c in campaigns
    ]
    rows.append(
        ["Plan total", "", "", "", str(plan.get("status") or "")]
        + [display(value_of(plan, col), col.kind) for col in picked]
    )
    return _table(header, rows, text_cols=5)


def _kpi_table(campaigns: Sequence[Mapping[str, Any]], plan: Mapping[str, Any]) -> str:
    """Every KPI as a row; a column per campaign and one for the plan total."""
    head = "".join(f"<th>{escape(campaign_label(c))}</th>" for c in campaigns)
    body = []
    span = len(campaigns) + 2
    for section, columns in SECTIONS:
        body.append(f'<tr class="section"><th colspan="{span}">{escape(section)}</th></tr>')
        for col in columns:
            cells = "".join(
                f"<td>{escape(display(value_of(c, col), col.kind))}</td>" for c in campaigns
            )
            total = escape(display(value_of(plan, col), col.kind))
            body.append(
                f'<tr><td class="text">{escape(col.label)}</td>{cells}'
                f'<td class="total">{total}</td></tr>'
            )
    return (
        f'<div class="scroll"><table class="kpis"><thead><tr><th>KPI</th>{head}'
        f'<th class="total">Plan total</th></tr></thead><tbody>{"".join(body)}</tbody>'
        "</table></div>"
    )


def _channel_section(campaigns: Sequence[Mapping[str, Any]]) -> str:
    channels = channel_efficiency(campaigns=campaigns)
    cpl = hbar_chart(
        chart="channel-cpl",
        label="CPL per channel",
        rows=[(ch["channel"], ch["cpl"]) for ch in channels],
        kind="money",
    )
    romi = hbar_chart(
        chart="channel-romi",
        label="ROMI per channel",
        rows=[(ch["channel"], ch["romi"]) for ch in channels],
        kind="percent",
    )
    table = _table(
        ["Channel", "Campaigns", "Spend", "Leads", "Gross profit", "CPL", "ROMI"],
        (
            [
                ch["channel"],
                display(ch["campaigns"], "count"),
                display(ch["spend"], "money"),
                display(ch["leads"], "count"),
                display(ch["gross_profit"], "money"),
                display(ch["cpl"], "money"),
                display(ch["romi"], "percent"),
            ]
            for ch in channels
        ),
    )
    return (
        "<section><h2>Channel efficiency</h2>"
        '<p class="meta">Per campaign channel: CPL = Σ spend / Σ leads, '
        "ROMI = (Σ gross profit − Σ spend) / Σ spend.</p>"
        f"<h3>CPL per channel</h3>{cpl}<h3>ROMI per channel</h3>{romi}{table}</section>"
    )


def render_html(
    *,
    plan: Mapping[str, Any],
    daily_spend: Sequence[Mapping[str, Any]],
    generated_at: dt.datetime,
    budget_tree: str = "",
    sales_progress: str = "",
    modelled: str = "",
    trade: str = "",
) -> str:
    """The plan report as one self-contained HTML document (charts as inline SVG, no script);
    ``budget_tree`` and ``sales_progress`` are those sections as ``report_sections`` renders
    them, ``modelled`` as ``report_models`` does, ``trade`` (brands, partners, segments) as
    ``report_trade`` does (each left out when empty)."""
    campaigns: list[Mapping[str, Any]] = list(plan.get("campaigns") or ())
    currency = str(plan.get("currency") or "")
    name = str(plan.get("name") or plan["plan_id"])
    period = period_label(plan.get("start"), plan.get("end"))
    names = {str(c["campaign_id"]): campaign_label(c) for c in campaigns}
    colors = {cid: PALETTE[i % len(PALETTE)] for i, cid in enumerate(names)}
    series = spend_series(
        daily=daily_spend, campaign_ids=list(names), start=plan.get("start"), end=plan.get("end")
    )
    per_campaign = [
        ("romi", "ROMI per campaign", "percent"),
        ("cpl", "CPL per campaign", "money"),
        ("cac", "CAC per campaign", "money"),
    ]
    returns = "".join(
        f"<h3>{escape(title)}</h3>"
        + hbar_chart(
            chart=f"campaign-{key}",
            label=title,
            rows=[(campaign_label(c), c.get(key)) for c in campaigns],
            kind=kind,  # type: ignore[arg-type]
        )
        for key, title, kind in per_campaign
    )
    generated = generated_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    title = f"Plan report: {name} {period}"
    meta = (
        f"Period {period} · plan {plan['plan_id']} · status {plan.get('status') or 'unknown'} · "
        f"currency {currency or '—'} · {len(campaigns)} campaign(s) · generated {generated}"
    )
    vs_budget = spend_budget_chart(campaigns=campaigns, currency=currency)
    over_time = (
        _legend(names, colors)
        + f"<h3>Spend per {series.unit if series else 'day'}</h3>"
        + daily_spend_chart(series=series, names=names, colors=colors, unit=currency)
        + "<h3>Cumulative spend vs plan budget (dashed)</h3>"
        + cumulative_spend_chart(
            series=series, budget=plan.get("budget"), names=names, colors=colors, unit=currency
        )
    )
    footer = (
        f"KPIs as defined in the MRM contract (SPEC §4) over the period {period}; money in "
        f"{currency or 'the plan currency'}; — means undefined (a division by zero). Plan totals "
        "treat the plan's campaigns as one scope (distinct leads and customers)."
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/>
<meta http-equiv="Content-Security-Policy" content="{_CSP}"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<title>{escape(title)}</title><style>{_CSS}</style></head>
<body>
<header><h1>{escape(title)}</h1><p class="meta">{escape(meta)}</p></header>
{_cards(plan, currency)}
<section><h2>Spend vs budget</h2>
<p class="meta">Pale bar: budget; inner bar: spend (red when over budget).</p>{vs_budget}</section>
{budget_tree}
<section><h2>Spend over time</h2>{over_time}</section>
<section><h2>Lead funnel</h2>{funnel_chart(kpis=plan)}</section>
<section><h2>ROMI, CPL and CAC per campaign</h2>{returns}</section>
{_channel_section(campaigns)}
<section><h2>Campaigns</h2>{_campaign_table(campaigns, plan)}</section>
{modelled}
{sales_progress}
{trade}
<section><h2>Every KPI</h2>{_kpi_table(campaigns, plan)}</section>
<footer>{escape(footer)}</footer>
</body></html>
"""
