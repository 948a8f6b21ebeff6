"""The plan report's charts: inline SVG drawn here — no script, nothing fetched, every text
escaped (``report_html`` puts them on the page; ``report_trade`` draws its bars with
``hbar_chart``)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from html import escape
from typing import Any

from services.measurement import domain
from services.measurement.report import Kind, SpendSeries, campaign_label, display

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
