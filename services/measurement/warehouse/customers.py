"""Customers in the warehouse: their profiles from ``mrm.customers.v1``, and the per-customer
sales aggregates RFM segmentation (``rfm``) reads.

``customer_profiles`` keeps each customer's latest ``customer.profile_updated`` by ``version``
(ReplacingMergeTree, read with FINAL). A redelivered event collapses into itself; two different
events with one version are the publisher's error, and the one merged last stays. Absent fields
are stored as ``''`` (an empty map for attributes), as absent optional fields of sales are.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from clickhouse_connect.driver.client import Client

from services.measurement.warehouse._sql import Scope, in_period, query_params

MIGRATION: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS {db}.customer_profiles (
        customer_id String, version UInt64, industry String, size LowCardinality(String),
        region String, age_band LowCardinality(String), attributes Map(String, String),
        updated_at DateTime64(3, 'UTC'), event_id UUID
    ) ENGINE = ReplacingMergeTree(version) ORDER BY customer_id""",
)
"""DDL of the profiles table (migration 11 of ``schema.MIGRATIONS``)."""

COLUMNS = "customer_id version industry size region age_band attributes updated_at event_id"
"""Insert column order of ``customer_profiles`` (``writes.COLUMNS``)."""


@dataclass(frozen=True)
class Profile:
    """A customer's latest profile (``None``: the field was not given)."""

    customer_id: str
    version: int
    industry: str | None = None
    size: str | None = None
    region: str | None = None
    age_band: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CustomerCurrencySales:
    """One customer's sales of a window in one currency."""

    customer_id: str
    currency: str
    last_sale_at: dt.datetime
    orders: int
    revenue: Decimal


def customer_sales(
    client: Client, *, start: dt.datetime, end: dt.datetime
) -> list[CustomerCurrencySales]:
    """Per customer and currency, the sales of [start, end): the last sale's time, the distinct
    orders and the revenue (each event_id once)."""
    sql = f"""SELECT customer_id, currency, max(occurred_at), uniqExact(order_id), sum(amount)
        FROM sales FINAL
        WHERE {in_period()}
        GROUP BY customer_id, currency ORDER BY customer_id, currency"""
    rows = client.query(sql, parameters=query_params(Scope(None), start, end)).result_rows
    return [
        CustomerCurrencySales(
            customer_id=str(c),
            currency=str(cur),
            last_sale_at=utc(at),
            orders=int(n),
            revenue=Decimal(amount),
        )
        for c, cur, at, n, amount in rows
    ]


def profiles_of_buyers(client: Client, *, start: dt.datetime, end: dt.datetime) -> list[Profile]:
    """The latest profile of every customer with a sale in [start, end)."""
    sql = f"""SELECT customer_id, version, industry, size, region, age_band, attributes
        FROM customer_profiles FINAL
        WHERE customer_id IN (
            SELECT customer_id FROM sales
            WHERE {in_period()})
        ORDER BY customer_id"""
    return profiles_of(
        client.query(sql, parameters=query_params(Scope(None), start, end)).result_rows
    )


def profile(client: Client, *, customer_id: str) -> Profile | None:
    """A customer's latest profile; ``None`` if none was published."""
    sql = """SELECT customer_id, version, industry, size, region, age_band, attributes
        FROM customer_profiles FINAL WHERE customer_id = {customer_id:String}"""
    found = profiles_of(client.query(sql, parameters={"customer_id": customer_id}).result_rows)
    return found[0] if found else None


def profiles_of(rows: Sequence[Sequence[object]]) -> list[Profile]:
    return [
        Profile(
            customer_id=str(c),
            version=int(v),  # type: ignore[call-overload]
            industry=str(i) or None,
            size=str(s) or None,
            region=str(r) or None,
            age_band=str(a) or None,
            attributes=dict(attrs),  # type: ignore[call-overload]
        )
        for c, v, i, s, r, a, attrs in rows
    ]


def utc(value: object) -> dt.datetime:
    """A datetime read from ClickHouse, in UTC."""
    assert isinstance(value, dt.datetime)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
