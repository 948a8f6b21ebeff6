"""A scope's amounts per currency (README "Currencies"): which currencies they are in, each
currency's share of the scope measured on its own, and the scope's KPIs in the reporting
currency and per currency (``conversion`` does the arithmetic).

Two steps, so that a scope whose amounts are all in the reporting currency costs one small
branch more: the scope's own query carries ``currencies_branch``; only when that finds another
currency does ``split`` send a second query, with every currency's share.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client

from services.measurement.conversion import (
    Conversion,
    conversion,
    converted_amounts,
    converted_budget,
    holds_amounts,
    holds_anything,
    own_fields,
)
from services.measurement.warehouse._measures import collect, kpis_from, measure_branches
from services.measurement.warehouse._sql import (
    Branch,
    Scope,
    Stream,
    fetch,
    in_period,
    query_params,
)
from shared.money import FxRates

Rows = Sequence[tuple[str, dict[str, Any]]]
Fields = Mapping[Any, Mapping[str, Any]]
"""Measure fields per group key (``''`` for the whole scope, a bucket's first day)."""


def _codes(text: str) -> frozenset[str]:
    return frozenset(code for code in text.split(",") if code)


def currencies_branch(
    scope: Scope, *, start: dt.datetime | None, end: dt.datetime | None
) -> Branch:
    """The currencies of the scope's amounts: its spend and sales in the period, and every sale
    of a customer who ever bought in it (a superset of its LTV cohort's sales)."""
    period = in_period(unbounded=start is None and end is None)
    sql = f"""SELECT '' AS k, arrayStringConcat(arraySort(groupUniqArray(currency)), ',') AS c0
        FROM (
            SELECT currency FROM spend WHERE {scope.where()} AND {period}
            UNION ALL
            SELECT currency FROM sales WHERE {scope.where()} AND {period}
            UNION ALL
            SELECT currency FROM sales WHERE customer_id IN (
                SELECT customer_id FROM sales WHERE {scope.where()})
        )"""
    return Stream("currencies", sql, (("currencies", _codes),)), query_params(scope, start, end)


def found_currencies(rows: Rows) -> frozenset[str]:
    """The currencies read from the rows of a ``currencies_branch``."""
    return frozenset().union(*(fields["currencies"] for _, fields in rows))


def pooled_dims(dims: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Budget and dates of several campaigns of one currency taken as one (budget ``None``
    without campaigns)."""
    if not dims:
        return {"budget": None, "start_date": None, "end_date": None}
    return {
        "budget": sum((d["budget"] for d in dims), Decimal(0)),
        "start_date": min(d["start_date"] for d in dims),
        "end_date": max(d["end_date"] for d in dims),
    }


def _budgets(dims: Sequence[Mapping[str, Any]]) -> dict[str, Decimal]:
    budgets: dict[str, Decimal] = defaultdict(Decimal)
    for d in dims:
        budgets[d["currency"]] += d["budget"]
    return dict(budgets)


@dataclass(frozen=True)
class Split:
    """A scope's measures as a whole and per currency, and how its currencies convert."""

    whole: Fields
    shares: Mapping[str, Fields]
    """Currency → its share's measure fields, for the currencies the scope holds anything in."""
    conversion: Conversion

    def kpis(
        self,
        key: Any,
        *,
        dims: Sequence[Mapping[str, Any]] | None,
        start: dt.datetime | None,
        end: dt.datetime | None,
        now: dt.datetime,
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """The KPIs of group ``key`` in the reporting currency (``None`` where they need an
        amount with a part in a currency without rate), and the KPIs of each currency's share
        in its own currency. ``dims``: the campaigns whose budget and dates count (``None``:
        none)."""
        shares = {currency: fields.get(key, {}) for currency, fields in self.shares.items()}
        by_currency = {}
        for currency, fields in sorted(shares.items()):
            mine = None if dims is None else [d for d in dims if d["currency"] == currency]
            by_currency[currency] = kpis_from(
                own_fields(fields),
                dims=None if mine is None else pooled_dims(mine),
                start=start,
                end=end,
                now=now,
            )
        whole = {**self.whole.get(key, {}), **converted_amounts(shares, conversion=self.conversion)}
        pooled = None
        if dims is not None:
            budget = converted_budget(_budgets(dims), conversion=self.conversion)
            pooled = {**pooled_dims(dims), "budget": budget}
        return kpis_from(whole, dims=pooled, start=start, end=end, now=now), by_currency


def _measure_shares(
    client: Client,
    *,
    scope: Scope,
    currencies: Collection[str],
    fallback: str,
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> dict[str, dict[Any, dict[str, Any]]]:
    """Every currency's share of ``scope``, in one query."""
    parts = {c: replace(scope, currency=c, fallback=c == fallback) for c in sorted(currencies)}
    branches = {c: measure_branches(part, start=start, end=end) for c, part in parts.items()}
    rows = fetch(client, [branch for c in parts for branch in branches[c]])
    out, at = {}, 0
    for currency, part in parts.items():
        n = len(branches[currency])
        out[currency] = collect(part, branches[currency], rows[at : at + n])
        at += n
    return out


def split(
    client: Client,
    *,
    scope: Scope,
    whole: Fields,
    found: Collection[str],
    dims: Sequence[Mapping[str, Any]] = (),
    target: str,
    fx: FxRates,
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> Split:
    """``scope``'s measures (``whole``, already fetched) split by currency for reporting in
    ``target``: ``found`` are the currencies its ``currencies_branch`` found, ``dims`` the
    campaigns whose budgets count. All in ``target``: the whole is its only share, no query."""
    budgets = _budgets(dims)
    currencies = {*found, *budgets}
    if currencies <= {target}:
        measured: Mapping[str, Fields] = {target: whole}
    else:
        measured = _measure_shares(
            client, scope=scope, currencies=currencies, fallback=fx.base, start=start, end=end
        )
    shares = {
        currency: fields
        for currency, fields in measured.items()
        if currency in budgets or any(holds_anything(f) for f in fields.values())
    }
    converting = [
        currency
        for currency, fields in shares.items()
        if budgets.get(currency) or any(holds_amounts(f) for f in fields.values())
    ]
    return Split(
        whole=whole,
        shares=shares,
        conversion=conversion(currencies=converting, target=target, fx=fx),
    )
