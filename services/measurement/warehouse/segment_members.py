"""What a rule-based segment reads from the warehouse: every customer's profile as of an
instant (``customer_profile_versions``), the profile versions and the per-day sales of a span
(to evaluate membership over time from one read), and the sales, new customers and leads of a set of
member customers over a period, whole or per day / ISO week.

Members travel as one ``Array(String)`` parameter (100 k ids are ~2 MB of query text, so the
query size limit is raised for these queries).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

from clickhouse_connect.driver.client import Client

from services.measurement import domain
from services.measurement.warehouse._measures import GROSS, read_gross
from services.measurement.warehouse._sql import BUCKETS, Scope, in_period, money, query_params
from services.measurement.warehouse.customers import Profile, profiles_of, utc

_SETTINGS = {"max_query_size": 64 * 1024 * 1024}
_MARGINS = "(SELECT campaign_id, gross_margin FROM campaigns FINAL)"


def profiles_as_of(client: Client, *, end: dt.datetime) -> list[Profile]:
    """Every customer's profile as it stood at ``end``: the highest version published before."""
    sql = """SELECT customer_id, max(version) AS v,
            argMax(industry, version), argMax(size, version), argMax(region, version),
            argMax(age_band, version), argMax(attributes, version)
        FROM customer_profile_versions
        WHERE updated_at < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
        GROUP BY customer_id ORDER BY customer_id"""
    rows = client.query(sql, parameters=query_params(Scope(None), None, end)).result_rows
    return profiles_of(rows)


def profile_changes(
    client: Client, *, start: dt.datetime, end: dt.datetime
) -> list[tuple[dt.datetime, Profile]]:
    """Every profile version published in [start, end), with its time, in publication order."""
    sql = """SELECT customer_id, version, industry, size, region, age_band, attributes, updated_at
        FROM customer_profile_versions
        WHERE updated_at >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
          AND updated_at < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
        ORDER BY updated_at, customer_id, version"""
    rows = client.query(sql, parameters=query_params(Scope(None), start, end)).result_rows
    profiles = profiles_of([row[:7] for row in rows])
    return [(utc(row[7]), p) for row, p in zip(rows, profiles, strict=True)]


class DaySales(NamedTuple):
    """One order's sales of one customer, currency and UTC day (each event_id once)."""

    day: dt.date
    customer_id: str
    currency: str
    order_id: str
    last_sale_at: dt.datetime
    revenue: Decimal


def sales_by_day(client: Client, *, start: dt.datetime, end: dt.datetime) -> list[DaySales]:
    """The sales of [start, end) per UTC day, customer, currency and order, by day: what
    ``customers.customer_sales`` sums over a window, kept apart so that any window of whole
    days within the span can be summed from them."""
    sql = f"""SELECT toDate(occurred_at, 'UTC') AS d, customer_id, currency, order_id,
            max(occurred_at), sum(amount)
        FROM sales FINAL
        WHERE {in_period()}
        GROUP BY d, customer_id, currency, order_id ORDER BY d, customer_id, currency, order_id"""
    rows = client.query(sql, parameters=query_params(Scope(None), start, end)).result_rows
    return [
        DaySales(
            day=d,
            customer_id=str(c),
            currency=str(cur),
            order_id=str(o),
            last_sale_at=utc(at),
            revenue=Decimal(amount),
        )
        for d, c, cur, o, at, amount in rows
    ]


@dataclass
class MemberMeasures:
    """The members' raw aggregates of one period or bucket."""

    revenue: dict[str, Decimal] = field(default_factory=dict)
    """Currency → revenue in it (likewise ``gross_profit``, ``discounts``, ``orders``)."""
    gross_profit: dict[str, Decimal] = field(default_factory=dict)
    discounts: dict[str, Decimal] = field(default_factory=dict)
    orders_by_currency: dict[str, int] = field(default_factory=dict)
    orders: int = 0
    buyers: int = 0
    repeat_buyers: int = 0
    new_customers: int = 0
    reached: tuple[int, ...] = (0,) * len(domain.FUNNEL_STAGES)
    lost: int = 0


def _key(bucket: str | None, column: str = "occurred_at") -> str:
    return "''" if bucket is None else f"{BUCKETS[bucket]}({column}, 'UTC')"


def member_measures(
    client: Client,
    *,
    members: Sequence[str],
    start: dt.datetime | None,
    end: dt.datetime | None,
    bucket: str | None = None,
) -> dict[Any, MemberMeasures]:
    """Per key ('' for the whole period, a bucket's first day with ``bucket``): the members'
    sales per currency (each event once), buyers, customers whose first sale ever lies in the
    period, and the funnel of the leads that name a member as their customer."""
    params = {**query_params(Scope(None), start, end), "members": list(members)}
    out: dict[Any, MemberMeasures] = defaultdict(MemberMeasures)
    if not members:
        return out

    def key(text: Any) -> Any:
        return "" if bucket is None else dt.date.fromisoformat(str(text))

    mine = "customer_id IN {members:Array(String)}"
    sales = f"""SELECT {_key(bucket, "s.occurred_at")} AS k, s.currency, toString(sum(s.amount)),
            toString(sum({GROSS})), toString(sum(s.discount_amount)), count()
        FROM (SELECT * FROM sales FINAL WHERE {mine} AND {in_period()}) AS s
        LEFT ANY JOIN {_MARGINS} AS m ON m.campaign_id = s.campaign_id
        GROUP BY k, s.currency"""
    for k, currency, revenue, gross, discounts, orders in _rows(client, sales, params):
        m = out[key(k)]
        m.revenue[currency], m.gross_profit[currency] = money(revenue), read_gross(gross)
        m.discounts[currency], m.orders_by_currency[currency] = money(discounts), int(orders)
    buyers = f"""SELECT k, sum(n), count(), countIf(n >= 2) FROM (
            SELECT {_key(bucket)} AS k, customer_id, count() AS n FROM sales FINAL
            WHERE {mine} AND {in_period()} GROUP BY k, customer_id
        ) GROUP BY k"""
    for k, orders, count, repeat in _rows(client, buyers, params):
        m = out[key(k)]
        m.orders, m.buyers, m.repeat_buyers = int(orders), int(count), int(repeat)
    new = f"""SELECT {_key(bucket, "first_at")} AS k, count() FROM (
            SELECT customer_id, min(occurred_at) AS first_at FROM sales
            WHERE {mine} GROUP BY customer_id
        ) WHERE {in_period("first_at")} GROUP BY k"""
    for k, count in _rows(client, new, params):
        out[key(k)].new_customers = int(count)
    n = len(domain.FUNNEL_STAGES)
    reached = ", ".join(f"countIf(r >= {rank})" for rank in range(n))
    leads = f"""SELECT k, {reached}, countIf(was_lost) FROM (
            SELECT {_key(bucket)} AS k, lead_id, max(stage_rank) AS r,
                   max(stage_rank = {domain.LOST_RANK}) AS was_lost
            FROM lead_events
            WHERE lead_id IN (SELECT lead_id FROM lead_events WHERE {mine}) AND {in_period()}
            GROUP BY k, lead_id
        ) GROUP BY k"""
    for k, *counts in _rows(client, leads, params):
        m = out[key(k)]
        m.reached, m.lost = tuple(int(c) for c in counts[:n]), int(counts[n])
    return out


def _rows(client: Client, sql: str, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
    return client.query(sql, parameters=params, settings=_SETTINGS).result_rows
