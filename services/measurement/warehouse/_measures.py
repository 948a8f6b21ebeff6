"""The measure streams of a scope and period — spend, ad metrics, leads, sales, cohorts — and
the KPIs computed from them.

Counting each event once *before* background merges: sums over spend, ad metrics and sales read
``FINAL``; the funnel only takes max / min per lead (``lead_funnel`` read with FINAL, or raw
events), and the first sale of a customer is an ``argMin`` — unaffected by duplicates; the
lifetime gross profit of a cohort reads one row per event_id (``LIMIT 1 BY``).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any, NamedTuple

from clickhouse_connect.driver.client import Client

from services.measurement import domain
from services.measurement.conversion import SCOPE_LTV
from services.measurement.warehouse._dims import TARGETS, target_rows
from services.measurement.warehouse._sql import (
    Branch,
    Scope,
    Stream,
    fetch,
    in_period,
    money,
    query_params,
)

_MARGINS = "(SELECT campaign_id, gross_margin FROM campaigns FINAL)"
GROSS = "toDecimal128(s.amount, 2) * if(m.campaign_id = '', toDecimal128(1, 6), m.gross_margin)"
"""A sale's gross profit (SPEC §4): ``s`` a sales row, ``m`` its campaign's row (joined LEFT ANY:
an unattributed sale, or one of no known campaign, at margin 1.0)."""
_GROSS_PLACES = Decimal("1e-8")  # amount (2 places) × margin (6 places)
_LEADS = f"max(stage_rank) AS r, max(stage_rank = {domain.LOST_RANK}) AS was_lost"


def read_gross(text: str) -> Decimal:
    """A sum of ``GROSS`` read back from text, to its exact places."""
    return Decimal(text).quantize(_GROSS_PLACES)


def _spend_stream(scope: Scope, *, unbounded: bool = False) -> Stream:
    sql = f"""SELECT {scope.key()} AS k, sum(amount) AS c0 FROM spend FINAL
        WHERE {scope.where(amount="currency")} AND {in_period(unbounded=unbounded)} GROUP BY k"""
    return Stream("spend", sql, (("spend", money),))


def _ad_stream(scope: Scope, *, unbounded: bool = False) -> Stream:
    sql = f"""SELECT {scope.key()} AS k, sum(impressions) AS c0, sum(clicks) AS c1
        FROM ad_metrics FINAL WHERE {scope.where()} AND {in_period(unbounded=unbounded)}
        GROUP BY k"""
    return Stream("ad_metrics", sql, (("impressions", int), ("clicks", int)))


def _per_lead(scope: Scope, *, unbounded: bool, regrouped: bool) -> str:
    """(campaign_id, lead_id, r, was_lost) of the leads with events in the period: from the
    ``lead_funnel`` pre-aggregate for the leads whose every event lies in the period, from the
    raw events for the leads that straddle one of its ends (none when it is unbounded).

    One row per (campaign, lead) — unless ``regrouped`` (the caller takes max per lead anyway)
    and the period is unbounded: then the unmerged rows are read as they are, without FINAL.
    """
    if unbounded and regrouped:
        return f"""SELECT campaign_id, lead_id, rank AS r, lost AS was_lost FROM lead_funnel
            WHERE {scope.where()}"""
    merged = f"""SELECT campaign_id, lead_id, rank AS r, lost AS was_lost, first_at, last_at
        FROM lead_funnel FINAL WHERE {scope.where()}"""
    if unbounded:
        return f"SELECT campaign_id, lead_id, r, was_lost FROM ({merged})"
    start = "fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')"
    end = "fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')"
    inside = f"first_at >= {start} AND last_at < {end}"
    return f"""SELECT campaign_id, lead_id, r, was_lost FROM ({merged}) WHERE {inside}
        UNION ALL
        SELECT campaign_id, lead_id, {_LEADS} FROM lead_events
        WHERE {scope.where()} AND {in_period()} AND (campaign_id, lead_id) IN (
            SELECT campaign_id, lead_id FROM ({merged})
            WHERE first_at < {end} AND last_at >= {start} AND NOT ({inside}))
        GROUP BY campaign_id, lead_id"""


def lead_stream(scope: Scope, *, unbounded: bool = False) -> Stream:
    """Distinct leads of the scope reaching each funnel stage or later, and those lost."""
    n = len(domain.FUNNEL_STAGES)
    reached = ", ".join(f"countIf(r >= {rank}) AS c{rank}" for rank in range(n))
    fields = (*((f"reached{rank}", int) for rank in range(n)), ("lost", int))
    if scope.channel is not None or scope.bucket is not None:
        # the pre-aggregate knows neither the channel of each event nor the day: raw events
        rows = f"""SELECT {scope.key()} AS k, lead_id, {_LEADS} FROM lead_events
            WHERE {scope.where()} AND {in_period(unbounded=unbounded)} GROUP BY k, lead_id"""
    elif scope.per_campaign or (scope.campaign_ids is not None and len(scope.campaign_ids) == 1):
        per_lead = _per_lead(scope, unbounded=unbounded, regrouped=False)
        rows = f"SELECT {scope.key()} AS k, r, was_lost FROM ({per_lead})"
    else:
        # a lead with events in two campaigns of the scope counts once
        per_lead = _per_lead(scope, unbounded=unbounded, regrouped=True)
        rows = f"""SELECT '' AS k, lead_id, max(r) AS r, max(was_lost) AS was_lost
            FROM ({per_lead}) GROUP BY lead_id"""
    sql = f"SELECT k, {reached}, countIf(was_lost) AS c{n} FROM ({rows}) GROUP BY k"
    return Stream("leads", sql, fields)


def _sales_stream(scope: Scope, *, unbounded: bool = False) -> Stream:
    key, group = scope.key("s.campaign_id"), "k, customer_id"
    if scope.per_campaign and scope.with_total:
        # the whole scope's buyers too (a customer of two campaigns is one buyer): its rows
        # get k = '' (measured: ~40 ms CPU for a plan vs ~65 ms for two separate branches; for
        # leads, with 50× more keys, GROUPING SETS was several times slower than two branches)
        key, group = "s.campaign_id", "GROUPING SETS ((s.campaign_id, customer_id), (customer_id))"
    sql = f"""SELECT k, sum(revenue) AS c0, sum(gross) AS c1, sum(discounts) AS c2,
               sum(orders) AS c3, count() AS c4, countIf(orders >= 2) AS c5
        FROM (
            SELECT {key} AS k, s.customer_id AS customer_id,
                   sum(s.amount) AS revenue, sum({GROSS}) AS gross,
                   sum(s.discount_amount) AS discounts, count() AS orders
            FROM (
                SELECT * FROM sales FINAL
                WHERE {scope.where(amount="currency")} AND {in_period(unbounded=unbounded)}
            ) AS s
            LEFT ANY JOIN {_MARGINS} AS m ON m.campaign_id = s.campaign_id
            GROUP BY {group}
        ) GROUP BY k"""
    fields = (
        ("revenue", money),
        ("gross_profit", read_gross),
        ("discounts", money),
        ("orders", int),
        ("buyers", int),
        ("repeat_buyers", int),
    )
    return Stream("sales", sql, fields)


def _cohort_stream(scope: Scope, *, unbounded: bool = False) -> Stream:
    # A customer belongs to the campaign of their first sale ever; duplicates cannot move a
    # min/argMin, but the lifetime gross profit is a sum: one row per event_id (LIMIT 1 BY
    # reads only the scope's customers and measured faster than FINAL over the whole table).
    members = replace(scope, currency=None, fallback=False)  # the cohort of the whole scope
    new = in_period("first_at", unbounded=unbounded)
    first = "(s.occurred_at, s.order_id, s.event_id)"
    columns = "event_id, customer_id, campaign_id, channel, occurred_at, order_id, amount"
    picks = {"first_campaign": "campaign_id", "first_channel": "channel"}
    gross = f"sum({GROSS})"
    counts = f"count() AS c0, countIf({new}) AS c1, sum(gross) AS c2"
    fields: list[tuple[str, Callable[[str], Any]]] = [
        ("ltv_customers", int),
        ("new_customers", int),
        ("ltv_gross_profit", read_gross),
    ]
    if scope.currency is not None:
        # a currency's share: the customers whose first sale is in it, their sales in it; and
        # the sales in it of every customer of the cohort (the scope's LTV, summed over shares)
        mine = "first_currency = {currency:String}"
        columns += ", currency"
        picks["first_currency"] = "currency"
        gross = f"sumIf({GROSS}, s.currency = {{currency:String}})"
        counts = f"""countIf({mine}) AS c0, countIf({mine} AND {new}) AS c1,
            sumIf(gross, {mine}) AS c2, sum(gross) AS c3"""
        fields.append((SCOPE_LTV, read_gross))
    firsts = ", ".join(f"argMin(s.{column}, {first}) AS {name}" for name, column in picks.items())
    sql = f"""SELECT {scope.key("first_campaign", "first_at")} AS k, {counts}
        FROM (
            SELECT s.customer_id AS customer_id, {firsts},
                   min(s.occurred_at) AS first_at, {gross} AS gross
            FROM (
                SELECT {columns} FROM sales WHERE customer_id IN (
                    SELECT customer_id FROM sales WHERE {members.where()})
                LIMIT 1 BY event_id
            ) AS s
            LEFT ANY JOIN {_MARGINS} AS m ON m.campaign_id = s.campaign_id
            GROUP BY customer_id
        ) WHERE {members.where("first_campaign", "first_channel")} GROUP BY k"""
    return Stream("cohorts", sql, tuple(fields))


def _streams(scope: Scope, *, unbounded: bool) -> list[Stream]:
    streams = [
        _spend_stream(scope, unbounded=unbounded),
        _ad_stream(scope, unbounded=unbounded),
        lead_stream(scope, unbounded=unbounded),
        _sales_stream(scope, unbounded=unbounded),
        _cohort_stream(scope, unbounded=unbounded),
    ]
    if scope.per_campaign and scope.with_total:
        # Distinct leads of the whole scope are not the sum of the campaigns' (one lead may
        # have events in two): a branch of their own gives the '' row. Measured: two branches
        # beat one GROUPING SETS ((campaign_id, lead_id), (lead_id)) several-fold.
        whole = Scope(scope.campaign_ids, channel=scope.channel)
        streams.append(lead_stream(whole, unbounded=unbounded))
    return streams


_SUMMED_TOTALS = ("spend", "ad_metrics", "cohorts")
"""Streams whose total is the sum of the per-campaign rows (sums, and customers who belong to
exactly one campaign); the distinct counts of leads and buyers come with their own total row."""


def measure_branches(
    scope: Scope, *, start: dt.datetime | None, end: dt.datetime | None
) -> list[Branch]:
    """Every measure stream of ``scope`` over [start, end) as ``fetch`` branches."""
    if scope.campaign_ids is not None and not scope.campaign_ids:
        return []
    params = query_params(scope, start, end)
    return [(s, params) for s in _streams(scope, unbounded=start is None and end is None)]


def collect(
    scope: Scope, branches: Sequence[Branch], rows: Sequence[list[tuple[str, dict[str, Any]]]]
) -> dict[Any, dict[str, Any]]:
    """``Measures`` fields per group key from the rows of ``measure_branches(scope)``."""
    out: dict[Any, dict[str, Any]] = defaultdict(dict)
    total: dict[str, Any] = {}
    n = len(domain.FUNNEL_STAGES)
    for (stream, _), stream_rows in zip(branches, rows, strict=True):
        for k, fields in stream_rows:
            key: Any = dt.date.fromisoformat(k) if scope.bucket is not None else k
            if stream.name == "leads":
                reached = tuple(fields[f"reached{i}"] for i in range(n))
                fields = {"reached": reached, "lost": fields["lost"]}
            out[key].update(fields)
            if scope.with_total and key != "" and stream.name in _SUMMED_TOTALS:
                for field, value in fields.items():
                    total[field] = total.get(field, 0) + value
    if total:
        out[""].update(total)
    return out


def fetch_measures(
    client: Client, *, scope: Scope, start: dt.datetime | None, end: dt.datetime | None
) -> dict[Any, dict[str, Any]]:
    """Raw aggregates per group key ('' for the whole scope, a campaign id with
    ``per_campaign``, a bucket's first day with ``bucket``), as ``Measures`` field dicts."""
    branches = measure_branches(scope, start=start, end=end)
    return collect(scope, branches, fetch(client, branches))


def kpis_from(
    fields: Mapping[str, Any],
    *,
    dims: Mapping[str, Any] | None,
    start: dt.datetime | None,
    end: dt.datetime | None,
    now: dt.datetime,
) -> dict[str, Any]:
    """Every KPI from measure fields and, when given, a campaign's or plan's budget and dates."""
    extra = {}
    if dims:
        extra = {
            "budget": dims["budget"],
            "start_date": dims["start_date"],
            "end_date": dims["end_date"],
        }
    measures = domain.Measures(**{**fields, **extra})
    as_of = now if end is None else min(now, end)
    return domain.compute_kpis(measures, as_of=as_of)


class Measured(NamedTuple):
    """What ``each_campaign`` fetches in one query."""

    own: dict[Any, dict[str, Any]]
    """The measures of the scope, per group key."""
    each: dict[str, dict[str, Any]]
    """The KPIs of each campaign on its own over the period."""
    targets: list[domain.Target]
    """The KPI targets of those campaigns."""
    also: list[list[tuple[str, dict[str, Any]]]]
    """The rows of the extra branches asked for, in their order."""


def each_campaign(
    client: Client,
    *,
    scope: Scope,
    dims: Sequence[Mapping[str, Any]],
    start: dt.datetime | None,
    end: dt.datetime | None,
    now: dt.datetime,
    also: Sequence[Branch] = (),
) -> Measured:
    """In one query: the measures of ``scope`` (per group key), the KPIs and targets of each
    campaign of ``dims`` on its own over the period (for CKPI and breakdowns), and the rows of
    ``also``, further branches the caller needs."""
    ids = tuple(d["campaign_id"] for d in dims)
    each_scope = Scope(ids, per_campaign=True)
    measured = measure_branches(scope, start=start, end=end)
    separate = scope != Scope(ids, per_campaign=True, with_total=True)
    each_branches = measure_branches(each_scope, start=start, end=end) if separate else []
    target_branch = [(TARGETS, {"ids": list(ids)})] if ids else []
    rows = fetch(client, [*measured, *each_branches, *target_branch, *also])
    extra = rows[len(rows) - len(also) :]
    rows = rows[: len(rows) - len(also)]
    own = collect(scope, measured, rows[: len(measured)])
    each = own
    if separate:
        cut = len(measured) + len(each_branches)
        each = collect(each_scope, each_branches, rows[len(measured) : cut])
    kpis = {
        d["campaign_id"]: kpis_from(
            each.get(d["campaign_id"], {}), dims=d, start=start, end=end, now=now
        )
        for d in dims
    }
    return Measured(own, kpis, target_rows(rows[-1]) if ids else [], extra)
