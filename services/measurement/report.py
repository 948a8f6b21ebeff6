"""Plan reports: the figures of a plan over a period rendered as HTML or CSV — pure, no I/O.

Input is what the warehouse computes: ``plan_kpis()`` (plan totals and a per-campaign breakdown)
and ``plan_daily_spend()`` (spend per UTC day and campaign). The HTML is one self-contained
document: inline CSS, charts drawn here as inline SVG, no script, nothing fetched (its
Content-Security-Policy forbids it), every text escaped. The CSV has one header row, a row per
campaign and a plan-total row; decimals are plain strings, undefined values are empty.

Channel efficiency sums numerators and denominators over the campaigns of a channel (the
campaign's channel) and divides once, so a channel's CPL is Σ spend / Σ leads, never a mean of
CPLs.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape
from typing import Any, Literal

from services.measurement import domain

Kind = Literal["money", "count", "percent", "multiple", "score"]


@dataclass(frozen=True)
class Column:
    """One KPI of the report: CSV header, label, display kind and where it sits in a KPI dict."""

    key: str
    label: str
    kind: Kind
    path: tuple[str, ...]


def _col(key: str, label: str, kind: Kind, *path: str) -> Column:
    return Column(key=key, label=label, kind=kind, path=path or (key,))


SECTIONS: tuple[tuple[str, tuple[Column, ...]], ...] = (
    (
        "Budget and spend",
        (
            _col("budget", "Budget", "money"),
            _col("spend", "Spend", "money"),
            _col("budget_utilisation", "Budget utilisation", "percent"),
            _col("forecast_at_completion", "Forecast at completion", "money"),
            _col("marketing_pct_of_sales", "Marketing % of sales", "percent"),
        ),
    ),
    (
        "Reach",
        (
            _col("impressions", "Impressions", "count"),
            _col("clicks", "Clicks", "count"),
            _col("ctr", "CTR", "percent"),
            _col("cpc", "CPC", "money"),
        ),
    ),
    (
        "Lead funnel",
        (
            _col("leads", "Leads", "count"),
            _col("cpl", "CPL", "money"),
            *(_col(f"funnel_{s}", f"Reached {s}", "count", "funnel", s) for s in domain.FUNNEL),
            _col("lost", "Lost", "count"),
            *(
                _col(name, f"{a} → {b}", "percent", "conversions", name)
                for name, a, b in domain.CONVERSIONS
            ),
        ),
    ),
    (
        "Customers and revenue",
        (
            _col("new_customers", "New customers", "count"),
            _col("cac", "CAC", "money"),
            _col("revenue", "Revenue", "money"),
            _col("gross_profit", "Gross profit", "money"),
            _col("discounts", "Discounts", "money"),
            _col("orders", "Orders", "count"),
            _col("average_check", "Average check", "money"),
            _col("customers", "Buying customers", "count"),
            _col("repeat_purchase_rate", "Repeat purchase rate", "percent"),
            _col("ltv_customers", "LTV customers", "count"),
            _col("ltv", "LTV", "money"),
            _col("ltv_cac", "LTV:CAC", "multiple"),
        ),
    ),
    (
        "Returns and score",
        (
            _col("romi", "ROMI", "percent"),
            _col("roi", "ROI", "percent"),
            _col("ckpi", "CKPI", "score"),
        ),
    ),
)
"""Every KPI of a plan or campaign, grouped as the report's KPI table shows them."""

COLUMNS: tuple[Column, ...] = tuple(c for _, cols in SECTIONS for c in cols)
IDENTITY: tuple[str, ...] = (
    "scope",
    "plan_id",
    "campaign_id",
    "name",
    "channel",
    "brand",
    "status",
    "currency",
    "period_from",
    "period_to",
)
"""The CSV's leading columns, before one column per KPI."""

PALETTE = (
    "#2563eb",
    "#f59e0b",
    "#10b981",
    "#ef4444",
    "#8b5cf6",
    "#06b6d4",
    "#ec4899",
    "#84cc16",
    "#f97316",
    "#64748b",
)
WIDTH = 880
_NICE = (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------


def value_of(row: Mapping[str, Any], column: Column) -> Any:
    """The value of ``column`` in a KPI dict (``None`` when absent or undefined)."""
    value: Any = row
    for part in column.path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def channel_efficiency(*, campaigns: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """CPL and ROMI per campaign channel from Σ spend, Σ leads and Σ gross profit, by channel."""
    groups: dict[str, dict[str, Any]] = {}
    for c in campaigns:
        channel = c.get("channel") or ""
        g = groups.setdefault(
            channel,
            {
                "channel": channel,
                "campaigns": 0,
                "spend": Decimal(0),
                "leads": 0,
                "gross_profit": Decimal(0),
            },
        )
        g["campaigns"] += 1
        g["spend"] += c.get("spend") or Decimal(0)
        g["leads"] += c.get("leads") or 0
        g["gross_profit"] += c.get("gross_profit") or Decimal(0)
    return [
        {
            **g,
            "cpl": domain.ratio(g["spend"], g["leads"], places=2),
            "romi": domain.ratio(g["gross_profit"] - g["spend"], g["spend"]),
        }
        for _, g in sorted(groups.items())
    ]


@dataclass(frozen=True)
class SpendSeries:
    """Spend per time bucket and campaign: ``unit`` is day, week or month; ``starts`` the
    first day of every bucket; ``values[campaign_id][i]`` the spend in bucket ``i``."""

    unit: Literal["day", "week", "month"]
    starts: tuple[dt.date, ...]
    values: dict[str, list[Decimal]]

    def totals(self) -> list[Decimal]:
        """Spend of all campaigns per bucket."""
        return [sum(col, Decimal(0)) for col in zip(*self.values.values(), strict=True)] or [
            Decimal(0) for _ in self.starts
        ]


def spend_series(
    *,
    daily: Sequence[Mapping[str, Any]],
    campaign_ids: Sequence[str],
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> SpendSeries | None:
    """Daily spend rows bucketed by day (≤ 92 days), week (≤ 2 years) or month; ``None`` if empty.

    The axis covers the period when one is given (clipped to the data beyond 400 days), else the
    days with spend."""
    days = [row["day"] for row in daily]
    if not days:
        return None
    first = start.astimezone(dt.UTC).date() if start else min(days)
    last = (end - dt.timedelta(microseconds=1)).astimezone(dt.UTC).date() if end else max(days)
    if (last - first).days > 400:
        first, last = max(first, min(days)), min(last, max(days))
    span = (last - first).days + 1
    unit: Literal["day", "week", "month"] = (
        "day" if span <= 92 else "week" if span <= 731 else "month"
    )
    starts = _bucket_starts(first, last, unit)
    index = {day: i for i, day in enumerate(starts)}
    ids = list(dict.fromkeys([*campaign_ids, *(row["campaign_id"] for row in daily)]))
    values = {cid: [Decimal(0)] * len(starts) for cid in ids}
    for row in daily:
        bucket = index.get(_bucket_of(row["day"], unit))
        if bucket is not None:
            values[row["campaign_id"]][bucket] += row["spend"]
    return SpendSeries(unit=unit, starts=tuple(starts), values=values)


def _bucket_of(day: dt.date, unit: str) -> dt.date:
    if unit == "week":
        return day - dt.timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    return day


def _bucket_starts(first: dt.date, last: dt.date, unit: str) -> list[dt.date]:
    out, day = [], _bucket_of(first, unit)
    while day <= last:
        out.append(day)
        if unit == "day":
            day += dt.timedelta(days=1)
        elif unit == "week":
            day += dt.timedelta(days=7)
        else:
            day = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return out


# --------------------------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------------------------


def display(value: Any, kind: Kind) -> str:
    """A KPI value for people: thousands separators, ratios as percent, ``—`` when undefined."""
    if value is None:
        return "—"
    if kind == "count":
        return f"{int(value):,}"
    number = Decimal(value)
    if kind == "percent":
        return f"{number * 100:,.2f} %"
    if kind == "multiple":
        return f"{number:,.2f}×"
    return f"{number:,.2f}"


def period_label(start: dt.datetime | None, end: dt.datetime | None) -> str:
    """``[from, to)`` in UTC; an open side reads 'start of data' / 'end of data'."""

    def show(value: dt.datetime | None, open_side: str) -> str:
        if value is None:
            return open_side
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")

    return f"[{show(start, 'start of data')}, {show(end, 'end of data')})"


def csv_cell(value: Any) -> str:
    """A value as a CSV cell: exact decimals, UTC times, text never read as a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value)
    # A spreadsheet would run a text cell starting like a formula (CSV injection).
    return f"'{text}" if text.startswith(_FORMULA_START) else text


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------


def render_csv(*, plan: Mapping[str, Any]) -> str:
    """One header row, a row per campaign and a plan-total row (``scope`` = campaign / plan)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*IDENTITY, *(c.key for c in COLUMNS)])
    common = {
        "plan_id": plan["plan_id"],
        "currency": plan.get("currency"),
        "period_from": plan.get("start"),
        "period_to": plan.get("end"),
    }
    rows = [{**c, **common, "scope": "campaign"} for c in plan.get("campaigns", ())]
    total = {**plan, **common, "scope": "plan", "campaign_id": None}
    total.update(channel=None, brand=None)
    for row in [*rows, total]:
        identity = [row.get(key) for key in IDENTITY]
        writer.writerow([csv_cell(v) for v in [*identity, *(value_of(row, c) for c in COLUMNS)]])
    return out.getvalue()


# --------------------------------------------------------------------------------------------
# SVG charts
# --------------------------------------------------------------------------------------------


def _n(value: float) -> str:
    return f"{value:.1f}"


def _svg(chart: str, label: str, height: float, body: Iterable[str]) -> str:
    h = _n(height)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{chart}" '
        f'viewBox="0 0 {WIDTH} {h}" width="{WIDTH}" height="{h}" role="img" '
        f'aria-label="{escape(label)}"><title>{escape(label)}</title>{"".join(body)}</svg>'
    )


def _text(x: float, y: float, text: str, *, anchor: str = "start", cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}"{klass}>{escape(text)}</text>'


def _rect(x: float, y: float, w: float, h: float, *, fill: str, tip: str, cls: str) -> str:
    return (
        f'<rect class="{cls}" x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}" '
        f'fill="{fill}"><title>{escape(tip)}</title></rect>'
    )


def _short(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _empty(chart: str, label: str, message: str) -> str:
    return _svg(chart, label, 48, [_text(WIDTH / 2, 28, message, anchor="middle", cls="muted")])


def _nice_max(value: float) -> float:
    """The smallest round number (1, 1.2, 1.5, 2, 2.5 … × 10ⁿ) at or above ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in _NICE if m * power >= value)


def campaign_label(campaign: Mapping[str, Any]) -> str:
    """How the report names a campaign: its name, else its id."""
    return str(campaign.get("name") or campaign.get("campaign_id") or "")


def hbar_chart(
    *,
    chart: str,
    label: str,
    rows: Sequence[tuple[str, Decimal | int | None]],
    kind: Kind,
    empty: str = "No campaigns",
) -> str:
    """Horizontal bars from a zero line (negative values go left); ``None`` reads 'n/a'."""
    if not rows:
        return _empty(chart, label, empty)
    values = [float(v) for _, v in rows if v is not None]
    lo, hi = min([0.0, *values]), max([0.0, *values])
    hi = hi if hi > lo else lo + 1
    x0, x1, top, row_h = 230.0, WIDTH - 120.0, 8.0, 28.0

    def x(v: float) -> float:
        return x0 + (v - lo) / (hi - lo) * (x1 - x0)

    zero = x(0)
    body = [
        f'<line class="axis" x1="{_n(zero)}" y1="4" x2="{_n(zero)}" '
        f'y2="{_n(top + row_h * len(rows) + 4)}"/>'
    ]
    for i, (name, value) in enumerate(rows):
        y = top + i * row_h
        body.append(_text(x0 - 8, y + 18, _short(name), anchor="end"))
        if value is None:
            body.append(_text(zero + 6, y + 18, "n/a", cls="muted"))
            continue
        end = x(float(value))
        cls, fill = ("bar negative", "#dc2626") if value < 0 else ("bar", PALETTE[0])
        tip = f"{name}: {display(value, kind)}"
        body.append(_rect(min(zero, end), y + 6, abs(end - zero), 16, fill=fill, tip=tip, cls=cls))
        body.append(_text(max(zero, end) + 6, y + 18, display(value, kind)))
    return _svg(chart, label, top * 2 + row_h * len(rows), body)


def spend_budget_chart(*, campaigns: Sequence[Mapping[str, Any]], currency: str) -> str:
    """Per campaign: its budget as a pale bar, its spend inside it (red when over budget)."""
    label = f"Spend vs budget per campaign ({currency})"
    if not campaigns:
        return _empty("spend-vs-budget", label, "No campaigns")
    top_value = max(
        [float(c.get("spend") or 0) for c in campaigns]
        + [float(c.get("budget") or 0) for c in campaigns]
    )
    scale = _nice_max(top_value)
    x0, x1, top, row_h = 230.0, WIDTH - 250.0, 8.0, 32.0
    body = []
    for i, c in enumerate(campaigns):
        name, y = campaign_label(c), top + i * row_h
        spend, budget = c.get("spend") or Decimal(0), c.get("budget")
        body.append(_text(x0 - 8, y + 20, _short(name), anchor="end"))
        if budget is not None:
            w = float(budget) / scale * (x1 - x0)
            tip = f"{name}: budget {display(budget, 'money')}"
            body.append(_rect(x0, y + 4, w, 22, fill="#cbd5e1", tip=tip, cls="bar budget"))
        over = budget is not None and spend > budget
        w = float(spend) / scale * (x1 - x0)
        tip = f"{name}: spend {display(spend, 'money')}"
        fill, cls = ("#dc2626", "bar spend over") if over else (PALETTE[0], "bar spend")
        body.append(_rect(x0, y + 9, w, 12, fill=fill, tip=tip, cls=cls))
        used = display(c.get("budget_utilisation"), "percent")
        text = f"{display(spend, 'money')} / {display(budget, 'money')} ({used})"
        body.append(_text(x1 + 8, y + 20, text, cls="over" if over else ""))
    return _svg("spend-vs-budget", label, top * 2 + row_h * len(campaigns), body)


def funnel_chart(*, kpis: Mapping[str, Any]) -> str:
    """The plan's lead funnel: centred bars per stage, with the conversion from the stage above."""
    label = "Lead funnel (distinct leads reaching each stage or later)"
    reached = kpis.get("funnel") or {}
    counts = [int(reached.get(stage, 0)) for stage in domain.FUNNEL]
    if not counts or max(counts) == 0:
        return _empty("funnel", label, "No leads in the period")
    conversions = kpis.get("conversions") or {}
    x0, x1, top, row_h = 130.0, WIDTH - 230.0, 8.0, 32.0
    centre, peak = (x0 + x1) / 2, max(counts)
    body = []
    for i, (stage, count) in enumerate(zip(domain.FUNNEL, counts, strict=True)):
        y = top + i * row_h
        w = count / peak * (x1 - x0)
        body.append(_text(x0 - 10, y + 20, stage, anchor="end"))
        tip = f"{stage}: {count:,} leads"
        fill = PALETTE[i % len(PALETTE)]
        body.append(_rect(centre - w / 2, y + 4, w, 24, fill=fill, tip=tip, cls="bar"))
        text = f"{count:,}"
        if i:
            step = conversions.get(f"{domain.FUNNEL[i - 1]}_to_{stage}")
            text += f" ({display(step, 'percent')} of {domain.FUNNEL[i - 1]})"
        body.append(_text(x1 + 10, y + 20, text))
    lost = f"lost: {int(kpis.get('lost') or 0):,} leads"
    body.append(_text(x1 + 10, top + row_h * len(counts) + 18, lost, cls="muted"))
    return _svg("funnel", label, top * 2 + row_h * (len(counts) + 1), body)


def _bucket_label(day: dt.date, unit: str) -> str:
    if unit == "month":
        return day.strftime("%Y-%m")
    return day.strftime("%d %b") if unit == "day" else "wk " + day.strftime("%d %b")


def _time_axes(
    series: SpendSeries, ymax: float, geometry: tuple[float, float, float, float]
) -> list[str]:
    x0, x1, y0, y1 = geometry
    parts = []
    for k in range(5):
        value = ymax * k / 4
        y = y1 - (y1 - y0) * k / 4
        parts.append(f'<line class="grid" x1="{_n(x0)}" y1="{_n(y)}" x2="{_n(x1)}" y2="{_n(y)}"/>')
        parts.append(_text(x0 - 6, y + 4, f"{value:,.0f}", anchor="end", cls="tick"))
    n = len(series.starts)
    every = max(1, math.ceil(n / 8))
    width = (x1 - x0) / n
    for i in range(0, n, every):
        label = _bucket_label(series.starts[i], series.unit)
        parts.append(_text(x0 + width * (i + 0.5), y1 + 18, label, anchor="middle", cls="tick"))
    return parts


def daily_spend_chart(
    *, series: SpendSeries | None, names: Mapping[str, str], colors: Mapping[str, str], unit: str
) -> str:
    """Spend per bucket as bars stacked by campaign."""
    label = f"Spend per {series.unit if series else 'day'} by campaign ({unit})"
    if series is None:
        return _empty("spend-over-time", label, "No spend in the period")
    x0, x1, y0, y1 = 80.0, WIDTH - 20.0, 12.0, 232.0
    ymax = _nice_max(float(max(series.totals())))
    body = _time_axes(series, ymax, (x0, x1, y0, y1))
    width = (x1 - x0) / len(series.starts)
    for i, start in enumerate(series.starts):
        base = y1
        for cid, values in series.values.items():
            if values[i] <= 0:
                continue
            h = float(values[i]) / ymax * (y1 - y0)
            base -= h
            tip = f"{names.get(cid, cid)}, {_bucket_label(start, series.unit)}: "
            tip += display(values[i], "money")
            body.append(
                _rect(
                    x0 + width * i + width * 0.1,
                    base,
                    width * 0.8,
                    h,
                    fill=colors.get(cid, PALETTE[-1]),
                    tip=tip,
                    cls="bar",
                )
            )
    return _svg("spend-over-time", label, y1 + 28, body)


def cumulative_spend_chart(
    *,
    series: SpendSeries | None,
    budget: Decimal | None,
    names: Mapping[str, str],
    colors: Mapping[str, str],
    unit: str,
) -> str:
    """Cumulative spend per campaign and in total (thick) against the plan budget (dashed)."""
    label = f"Cumulative spend vs plan budget ({unit})"
    if series is None:
        return _empty("cumulative-spend", label, "No spend in the period")
    totals = list(_cumulate(series.totals()))
    ymax = _nice_max(max(float(totals[-1]), float(budget or 0)))
    x0, x1, y0, y1 = 80.0, WIDTH - 20.0, 12.0, 232.0
    body = _time_axes(series, ymax, (x0, x1, y0, y1))
    width = (x1 - x0) / len(series.starts)

    def path(values: Sequence[Decimal], cls: str, colour: str, tip: str) -> str:
        points = [(x0, y1)] + [
            (x0 + width * (i + 1), y1 - float(v) / ymax * (y1 - y0)) for i, v in enumerate(values)
        ]
        d = "M" + " L".join(f"{_n(px)},{_n(py)}" for px, py in points)
        return (
            f'<path class="{cls}" d="{d}" fill="none" stroke="{colour}">'
            f"<title>{escape(tip)}</title></path>"
        )

    if budget is not None and budget > 0:
        y = y1 - float(budget) / ymax * (y1 - y0)
        body.append(
            f'<line class="budget-line" x1="{_n(x0)}" y1="{_n(y)}" x2="{_n(x1)}" y2="{_n(y)}">'
            f"<title>plan budget {escape(display(budget, 'money'))}</title></line>"
        )
        # above the line, or below it when the line runs along the top of the plot
        label_y = y - 6 if y - 6 >= y0 + 12 else y + 16
        body.append(_text(x1 - 4, label_y, f"budget {display(budget, 'money')}", anchor="end"))
    for cid, values in series.values.items():
        cumulative = list(_cumulate(values))
        tip = f"{names.get(cid, cid)}: {display(cumulative[-1], 'money')}"
        body.append(path(cumulative, "line", colors.get(cid, PALETTE[-1]), tip))
    body.append(path(totals, "line total", "#0f172a", f"plan: {display(totals[-1], 'money')}"))
    return _svg("cumulative-spend", label, y1 + 28, body)


def _cumulate(values: Iterable[Decimal]) -> Iterable[Decimal]:
    running = Decimal(0)
    for value in values:
        running += value
        yield running


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
