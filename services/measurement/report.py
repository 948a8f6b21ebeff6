"""Plan reports: the figures of a plan over a period rendered as HTML or CSV — pure, no I/O.

Input is what the warehouse computes: ``plan_kpis()`` (plan totals and a per-campaign breakdown)
and ``plan_daily_spend()`` (spend per UTC day and campaign). This module holds the figures (the
KPI columns, channel efficiency, the spend series), their formatting and the CSV, which has one
header row, a row per campaign and a plan-total row; decimals are plain strings, undefined
values are empty. The HTML document is ``report_html``'s, its charts ``report_charts``'.

Channel efficiency sums numerators and denominators over the campaigns of a channel (the
campaign's channel) and divides once, so a channel's CPL is Σ spend / Σ leads, never a mean of
CPLs.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
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


def campaign_label(campaign: Mapping[str, Any]) -> str:
    """How the report names a campaign: its name, else its id."""
    return str(campaign.get("name") or campaign.get("campaign_id") or "")
