"""KPIs over time: per-day or per-week series of any scope, a plan's daily spend, and how long
leads take from one funnel stage to the next."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client

from services.measurement import domain
from services.measurement.warehouse._dims import PLAN, campaign_dims, dims_branches, dims_rows
from services.measurement.warehouse._measures import collect, measure_branches
from services.measurement.warehouse._sql import BUCKETS, Scope, fetch, in_period, query_params
from services.measurement.warehouse.currencies import currencies_branch, found_currencies, split
from shared.money import FxRates

MAX_SERIES_BUCKETS = 1000
SERIES_SCOPES = ("campaign", "plan", "channel", "company")
SERIES_KPIS = ("spend", "leads", "new_customers", "revenue", "gross_profit", "cpl", "romi")
_HOUR_MS = 3_600_000


def series_buckets(*, start: dt.datetime, end: dt.datetime, bucket: str) -> list[dt.date]:
    """First days (UTC) of the day or ISO-week buckets that [start, end) touches."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("period: datetimes must be timezone-aware")
    first = start.astimezone(dt.UTC).date()
    last = (end.astimezone(dt.UTC) - dt.timedelta(microseconds=1)).date()
    step = dt.timedelta(days=1)
    if bucket == "week":
        first, last = (
            first - dt.timedelta(days=first.weekday()),
            last - dt.timedelta(days=last.weekday()),
        )
        step = dt.timedelta(weeks=1)
    elif bucket != "day":
        raise ValueError(f"bucket: must be one of {', '.join(BUCKETS)}")
    days: list[dt.date] = []
    while first <= last:
        days.append(first)
        first += step
    return days


def resolve_scope(
    client: Client, *, scope: str, id: str | None, default: str
) -> tuple[Scope, str] | None:
    """The scope a series covers and its own currency (a campaign's or plan's; ``default`` for
    the others); ``None`` for an unknown campaign or plan."""
    if scope == "company":
        return Scope(None), default
    if id is None:
        raise ValueError(f"id: required for scope {scope}")
    if scope == "channel":
        return Scope(None, channel=id.strip().lower()), default
    if scope == "campaign":
        dims = campaign_dims(client, where="campaign_id = {cid:String}", params={"cid": id})
        return (Scope((id,)), dims[0]["currency"]) if dims else None
    if scope == "plan":
        where, params = "plan_id = {pid:String}", {"pid": id}
        found = fetch(client, [*dims_branches(where=where, params=params), (PLAN, params)])
        dims = dims_rows(found[:3])
        plan = next((fields for _, fields in found[3]), None)
        if plan is None and not dims:
            return None
        return Scope(tuple(d["campaign_id"] for d in dims)), (plan or dims[0])["currency"]
    raise ValueError(f"scope: must be one of {', '.join(SERIES_SCOPES)}")


def kpi_series(
    client: Client,
    *,
    scope: str,
    id: str | None = None,
    start: dt.datetime,
    end: dt.datetime,
    fx: FxRates,
    currency: str | None = None,
    bucket: str = "day",
    now: dt.datetime | None = None,
) -> dict[str, Any] | None:
    """Spend, leads, new customers, revenue, CPL and ROMI per day or week of [start, end), in
    ``currency`` (default: the campaign's or plan's, else the default currency ``fx.base``) and
    per currency.

    Each bucket is a period of its own: a lead counts in every bucket where it reached ``lead``
    or later, ratios come from the bucket's own sums. ``None`` for an unknown campaign or plan.
    """
    now = now or dt.datetime.now(dt.UTC)
    days = series_buckets(start=start, end=end, bucket=bucket)
    if len(days) > MAX_SERIES_BUCKETS:
        raise ValueError(f"to: at most {MAX_SERIES_BUCKETS} {bucket} buckets per series")
    resolved = resolve_scope(client, scope=scope, id=id, default=fx.base)
    if resolved is None:
        return None
    covered, own = resolved
    bucketed = Scope(covered.campaign_ids, channel=covered.channel, bucket=bucket)
    measures: dict[Any, dict[str, Any]] = {}
    found: frozenset[str] = frozenset()
    if covered.campaign_ids is None or covered.campaign_ids:
        branches = measure_branches(bucketed, start=start, end=end)
        rows = fetch(client, [*branches, currencies_branch(bucketed, start=start, end=end)])
        measures = collect(bucketed, branches, rows[:-1])
        found = found_currencies(rows[-1])
    priced = split(
        client,
        scope=bucketed,
        whole=measures,
        found=found,
        target=currency or own,
        fx=fx,
        start=start,
        end=end,
    )
    points = []
    for day in days:
        kpis, by_currency = priced.kpis(day, dims=None, start=start, end=end, now=now)
        points.append(
            {
                "start": day,
                **_series_values(kpis),
                "by_currency": {c: _series_values(k) for c, k in by_currency.items()},
            }
        )
    return {
        "scope": scope,
        "id": id if scope != "company" else None,
        "bucket": bucket,
        "start": start,
        "end": end,
        **priced.conversion.summary(),
        "points": points,
    }


def _series_values(kpis: dict[str, Any]) -> dict[str, Any]:
    return {name: kpis[name] for name in SERIES_KPIS}


def stage_durations(
    client: Client,
    *,
    campaign_id: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> dict[str, Any]:
    """Hours from a lead first reaching a stage to first reaching the next one (None = company).

    Per adjacent pair X→Y: leads with events at both X and Y in the period (a skipped stage has
    no time, so its pairs leave the lead out) and Y not before X; count, average and median.
    """
    scope = Scope(None if campaign_id is None else (campaign_id,))
    stages = range(len(domain.FUNNEL_STAGES))
    firsts = ", ".join(
        f"minIf(occurred_at, stage_rank = {i}) AS t{i}, countIf(stage_rank = {i}) > 0 AS r{i}"
        for i in stages
    )
    pairs = []
    for i in stages[:-1]:
        both = f"r{i} AND r{i + 1} AND t{i + 1} >= t{i}"
        ms = f"toUnixTimestamp64Milli(t{i + 1}) - toUnixTimestamp64Milli(t{i})"
        pairs.append(
            f"countIf({both}), sumIf({ms}, {both}), quantileExactInclusiveIf(0.5)({ms}, {both})"
        )
    sql = f"""SELECT {", ".join(pairs)} FROM (
            SELECT lead_id, {firsts} FROM lead_events
            WHERE {scope.where()} AND {in_period()} GROUP BY lead_id
        )"""
    row = client.query(sql, parameters=query_params(scope, start, end)).result_rows[0]
    transitions = []
    for i in stages[:-1]:
        count, total_ms, median_ms = row[3 * i : 3 * i + 3]
        transitions.append(
            {
                "from": domain.FUNNEL_STAGES[i],
                "to": domain.FUNNEL_STAGES[i + 1],
                "leads": int(count),
                "average_hours": domain.ratio(total_ms, int(count) * _HOUR_MS, places=2),
                "median_hours": (
                    domain.ratio(Decimal(repr(median_ms)), _HOUR_MS, places=2) if count else None
                ),
            }
        )
    return {"campaign_id": campaign_id, "start": start, "end": end, "transitions": transitions}


def plan_daily_spend(
    client: Client,
    *,
    plan_id: str,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Spend per UTC day and campaign of a plan over [start, end), ordered by day and campaign."""
    sql = f"""SELECT toDate(occurred_at, 'UTC') AS day, campaign_id, sum(amount) AS spend
        FROM spend FINAL
        WHERE campaign_id IN (
                SELECT campaign_id FROM campaigns FINAL WHERE plan_id = {{pid:String}})
            AND {in_period()}
        GROUP BY day, campaign_id ORDER BY day, campaign_id"""
    params = {**query_params(Scope(None), start, end), "pid": plan_id}
    return list(client.query(sql, parameters=params).named_results())
