"""What the pipeline forecast (``services.measurement.pipeline``) needs of a campaign, plan or
channel: its open leads, grouped by stage, hour entered and currency; the funnel, the days from
each stage to customer and the average check its history measured.

Each lead counts once however often its events were redelivered: only max / min / argMax and
``countIf(...) > 0`` are taken per lead, and sales are read ``FINAL``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

from clickhouse_connect.driver.client import Client

from services.measurement import domain, pipeline
from services.measurement.warehouse._sql import Scope, in_period, query_params
from services.measurement.warehouse.series import resolve_scope
from shared.money import CurrencyNotConvertible, FxRates, in_currency

PIPELINE_SCOPES = ("campaign", "plan", "channel")
MAX_TIMED = 1000
"""Durations kept per stage: all of them up to this many, else a seeded (repeatable) sample."""

_STAGES = range(len(domain.FUNNEL_STAGES))
_CUSTOMER = pipeline.CUSTOMER + 1  # 1-based index of customer in the per-lead arrays
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class PipelineInputs:
    """A scope's open leads and history, amounts in ``currency``."""

    currency: str
    leads: list[pipeline.OpenLeads]
    history: pipeline.History
    missing_rates: list[str] = field(default_factory=list)
    """Currencies of leads' values or sales with no rate to ``currency``."""


def _per_lead(scope: Scope) -> str:
    """One row per lead of the scope with events in the period: highest stage ``r``, ever
    lost, first time at each stage (``firsts``, 1-based by rank + 1) and whether it was there
    (``has``), its latest expected value and whether it has one, its latest campaign."""
    firsts = ", ".join(f"minIf(occurred_at, stage_rank = {i})" for i in _STAGES)
    has = ", ".join(f"countIf(stage_rank = {i}) > 0" for i in _STAGES)
    return f"""SELECT lead_id, max(stage_rank) AS r, max(stage_rank = {domain.LOST_RANK}) AS lost,
            [{firsts}] AS firsts, [{has}] AS has,
            countIf(isNotNull(expected_value)) > 0 AS valued,
            argMaxIf(expected_value, occurred_at, isNotNull(expected_value)) AS value,
            argMax(campaign_id, occurred_at) AS campaign
        FROM lead_events WHERE {scope.where()} AND {in_period()} GROUP BY lead_id"""


def _open_leads(client: Client, *, scope: Scope, as_of: dt.datetime, base: str) -> list[Any]:
    """(rank, hour entered in epoch s, currency, leads, valued, Σ value) of the open leads."""
    sql = f"""SELECT l.r, toUnixTimestamp(toStartOfHour(l.firsts[l.r + 1])) AS entered,
            if(c.campaign_id = '', {{base:String}}, c.currency) AS currency,
            count(), countIf(l.valued), toString(sumIf(ifNull(l.value, 0), l.valued))
        FROM ({_per_lead(scope)}) AS l
        LEFT ANY JOIN (SELECT campaign_id, currency FROM campaigns FINAL) AS c
            ON c.campaign_id = l.campaign
        WHERE l.r >= 0 AND l.r < {pipeline.CUSTOMER} AND NOT l.lost
        GROUP BY l.r, entered, currency ORDER BY l.r, entered, currency"""
    params = {**query_params(scope, None, as_of), "base": base}
    return list(client.query(sql, parameters=params).result_rows)


def _history(
    client: Client, *, scope: Scope, start: dt.datetime | None, as_of: dt.datetime
) -> tuple[list[int], dict[str, list[Fraction]]]:
    """Leads reaching each stage or later over [start, as_of) and, per open stage, the
    milliseconds from first reaching it to first reaching customer (as days)."""
    reached = ", ".join(f"countIf(r >= {i})" for i in _STAGES)
    timed = []
    for i in range(pipeline.CUSTOMER):
        at, done = f"firsts[{i + 1}]", f"firsts[{_CUSTOMER}]"
        both = f"has[{i + 1}] AND has[{_CUSTOMER}] AND {done} >= {at}"
        ms = f"toUnixTimestamp64Milli({done}) - toUnixTimestamp64Milli({at})"
        timed.append(f"groupArraySampleIf({MAX_TIMED}, 1)({ms}, {both})")
    sql = f"SELECT {reached}, {', '.join(timed)} FROM ({_per_lead(scope)})"
    row = client.query(sql, parameters=query_params(scope, start, as_of)).result_rows[0]
    n = len(domain.FUNNEL_STAGES)
    durations = {
        stage: sorted(pipeline.days(int(ms)) for ms in row[n + i])
        for i, stage in enumerate(pipeline.OPEN_STAGES)
    }
    return [int(x) for x in row[:n]], durations


def _sales(
    client: Client, *, scope: Scope, start: dt.datetime | None, as_of: dt.datetime
) -> list[Any]:
    """(currency, Σ amount, orders) of the scope's sales over [start, as_of)."""
    sql = f"""SELECT currency, toString(sum(amount)), count() FROM sales FINAL
        WHERE {scope.where()} AND {in_period()} GROUP BY currency ORDER BY currency"""
    return list(client.query(sql, parameters=query_params(scope, start, as_of)).result_rows)


def pipeline_inputs(
    client: Client,
    *,
    scope: str,
    id: str,
    fx: FxRates,
    as_of: dt.datetime,
    lookback_days: int | None = None,
) -> PipelineInputs | None:
    """The open leads of a campaign, plan or channel as of ``as_of`` (all its history), and
    what its history over the last ``lookback_days`` (all when ``None``) measured; amounts in
    the campaign's or plan's currency, a channel's in the default one (``fx.base``). ``None``
    for an unknown campaign or plan.

    The measured funnel counts the leads still open too (SPEC §4's stage conversion over the
    period): a scope whose leads are young reads low conversions until they close.
    """
    if scope not in PIPELINE_SCOPES:
        raise ValueError(f"scope: must be one of {', '.join(PIPELINE_SCOPES)}")
    resolved = resolve_scope(client, scope=scope, id=id, default=fx.base)
    if resolved is None:
        return None
    covered, currency = resolved
    return campaigns_inputs(
        client, covered=covered, currency=currency, fx=fx, as_of=as_of, lookback_days=lookback_days
    )


def campaigns_inputs(
    client: Client,
    *,
    covered: Scope,
    currency: str,
    fx: FxRates,
    as_of: dt.datetime,
    lookback_days: int | None = None,
) -> PipelineInputs:
    """What ``pipeline_inputs`` answers, for the campaigns (or channel) ``covered`` selects,
    amounts in ``currency``."""
    start = None if lookback_days is None else as_of - dt.timedelta(days=lookback_days)
    if start is not None and start < _EPOCH:  # the tables hold nothing earlier
        start = None
    if covered.campaign_ids == ():  # a plan without campaigns: nothing to measure
        empty = pipeline.History((0,) * len(domain.FUNNEL_STAGES), {}, None)
        return PipelineInputs(currency=currency, leads=[], history=empty)
    missing: set[str] = set()
    sales = _sales(client, scope=covered, start=start, as_of=as_of)
    revenue, unconverted = in_currency(
        {c: Decimal(total) for c, total, _ in sales}, currency=currency, fx=fx
    )
    orders = sum(int(n) for _, _, n in sales)
    missing.update(unconverted)
    average_check = None if unconverted else domain.ratio(revenue, orders, places=2)
    leads = []
    for rank, entered, source, count, valued, total in _open_leads(
        client, scope=covered, as_of=as_of, base=fx.base
    ):
        value_sum: Decimal | None
        try:
            value_sum = fx.convert(Decimal(total), source=source, target=currency)
        except CurrencyNotConvertible:
            value_sum = None if valued else Decimal(0)
            missing.update([source] if valued else [])
        leads.append(
            pipeline.OpenLeads(
                stage=domain.FUNNEL_STAGES[rank],
                entered_at=dt.datetime.fromtimestamp(entered, dt.UTC),
                leads=int(count),
                valued=int(valued),
                value_sum=value_sum,
            )
        )
    reached, durations = _history(client, scope=covered, start=start, as_of=as_of)
    return PipelineInputs(
        currency=currency,
        leads=leads,
        history=pipeline.History(reached, durations, average_check),
        missing_rates=sorted(missing),
    )
