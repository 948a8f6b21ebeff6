"""KPIs over time: per-day or per-week series of any scope, a plan's daily spend, and how long
leads take from one funnel stage to the next."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client

from services.measurement import domain
from services.measurement.warehouse._dims import PLAN, campaign_dims
from services.measurement.warehouse._measures import fetch_measures, kpis_from
from services.measurement.warehouse._sql import BUCKETS, Scope, fetch, in_period, query_params

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


def _plan_dims(client: Client, *, plan_id: str) -> dict[str, Any] | None:
    rows = fetch(client, [(PLAN, {"pid": plan_id})])[0]
    return next(({"plan_id": k, **fields} for k, fields in rows), None)


def _series_scope(client: Client, *, scope: str, id: str | None) -> Scope | None:
    if scope == "company":
        return Scope(None)
    if id is None:
        raise ValueError(f"id: required for scope {scope}")
    if scope == "channel":
        return Scope(None, channel=id.strip().lower())
    if scope == "campaign":
        dims = campaign_dims(client, where="campaign_id = {cid:String}", params={"cid": id})
        return Scope((id,)) if dims else None
    if scope == "plan":
        dims = campaign_dims(client, where="plan_id = {pid:String}", params={"pid": id})
        if not dims and _plan_dims(client, plan_id=id) is None:
            return None
        return Scope(tuple(d["campaign_id"] for d in dims))
    raise ValueError(f"scope: must be one of {', '.join(SERIES_SCOPES)}")


def kpi_series(
    client: Client,
    *,
    scope: str,
    id: str | None = None,
    start: dt.datetime,
    end: dt.datetime,
    bucket: str = "day",
    now: dt.datetime | None = None,
) -> dict[str, Any] | None:
    """Spend, leads, new customers, revenue, CPL and ROMI per day or week of [start, end).

    Each bucket is a period of its own: a lead counts in every bucket where it reached ``lead``
    or later, ratios come from the bucket's own sums. ``None`` for an unknown campaign or plan.
    """
    now = now or dt.datetime.now(dt.UTC)
    days = series_buckets(start=start, end=end, bucket=bucket)
    if len(days) > MAX_SERIES_BUCKETS:
        raise ValueError(f"to: at most {MAX_SERIES_BUCKETS} {bucket} buckets per series")
    resolved = _series_scope(client, scope=scope, id=id)
    if resolved is None:
        return None
    measures: dict[Any, dict[str, Any]] = {}
    if resolved.campaign_ids is None or resolved.campaign_ids:
        bucketed = Scope(resolved.campaign_ids, channel=resolved.channel, bucket=bucket)
        measures = fetch_measures(client, scope=bucketed, start=start, end=end)
    points = []
    for day in days:
        kpis = kpis_from(measures.get(day, {}), dims=None, start=start, end=end, now=now)
        points.append({"start": day, **{name: kpis[name] for name in SERIES_KPIS}})
    return {
        "scope": scope,
        "id": id if scope != "company" else None,
        "bucket": bucket,
        "start": start,
        "end": end,
        "points": points,
    }


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
