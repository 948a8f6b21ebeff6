"""SQL plumbing the warehouse's query modules share: scopes, period bounds, one round trip.

A KPI call sends its aggregate queries and lookups as branches of ONE ``UNION ALL`` query
(``fetch``): one round trip, and ClickHouse runs the branches in parallel.

Query functions use the client's current database (``client.connect`` selects it);
``schema.migrate`` names it explicitly. Timestamps are bound as epoch milliseconds, so no session
time zone is involved.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client

_EPOCH_MS_MIN = 0
_EPOCH_MS_MAX = 10_413_792_000_000  # 2300-01-01, beyond any DateTime64 value we store


def ident(name: str) -> str:
    """``name`` if it can stand unquoted as a database name, else ``ValueError``."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"database: invalid identifier {name!r}")
    return name


BUCKETS: dict[str, str] = {"day": "toDate", "week": "toMonday"}
"""Series bucket → ClickHouse function of ``(time, 'UTC')`` giving the bucket's first day."""


def _channel_match(*, column: str, channel: str) -> str:
    # A row's channel is its own; a sale without one takes its campaign's channel. Spend, ad
    # metrics and lead events always carry a channel, so only sales use the fallback.
    return (
        f"({channel} = {{channel:String}} OR ({channel} = '' AND {column} IN ("
        "SELECT campaign_id FROM campaigns FINAL WHERE channel = {channel:String})))"
    )


def _currency_match(*, column: str, fallback: bool) -> str:
    # Rows without an amount count in their campaign's currency; rows of no known campaign in
    # the default one (``fallback``), the currency ingest gives their amounts.
    kept, same = ("NOT IN", "!=") if fallback else ("IN", "=")
    return (
        f"{column} {kept} (SELECT campaign_id FROM campaigns FINAL "
        f"WHERE currency {same} {{currency:String}})"
    )


@dataclass(frozen=True)
class Scope:
    """Which campaigns (``None`` = the whole company) and whether to group by campaign."""

    campaign_ids: tuple[str, ...] | None
    per_campaign: bool = False
    channel: str | None = None  # only rows of this channel (see _channel_match)
    bucket: str | None = None  # group by time bucket ("day" | "week") instead
    with_total: bool = False  # with per_campaign: also the whole scope's row ('')
    currency: str | None = None  # only this currency's share of the scope (see where)
    fallback: bool = False  # with currency: it is the default one (rows of no known campaign)

    def where(
        self, column: str = "campaign_id", channel: str = "channel", *, amount: str | None = None
    ) -> str:
        """The WHERE condition that keeps the scope's rows.

        With ``currency``: a row with an amount by its own currency (``amount`` names the
        column), any other row by its campaign's (see ``_currency_match``)."""
        parts = ["1" if self.campaign_ids is None else f"{column} IN {{ids:Array(String)}}"]
        if self.channel is not None:
            parts.append(_channel_match(column=column, channel=channel))
        if self.currency is not None:
            own = f"{amount} = {{currency:String}}" if amount is not None else None
            parts.append(own or _currency_match(column=column, fallback=self.fallback))
        return " AND ".join(parts)

    def key(self, column: str = "campaign_id", time: str = "occurred_at") -> str:
        """The group key: a bucket's first day, a campaign id, or '' for the whole scope."""
        if self.bucket is not None:
            return f"{BUCKETS[self.bucket]}({time}, 'UTC')"
        return column if self.per_campaign else "''"


def _ms(value: dt.datetime | None, default: int) -> int:
    if value is None:
        return default
    if value.tzinfo is None:
        raise ValueError("period: datetimes must be timezone-aware")
    return int(value.timestamp() * 1000)


def query_params(
    scope: Scope, start: dt.datetime | None, end: dt.datetime | None
) -> dict[str, Any]:
    """Parameters of ``Scope.where`` and ``in_period``: campaign ids, channel, currency, bounds
    in ms."""
    return {
        "ids": list(scope.campaign_ids or ()),
        "channel": scope.channel or "",
        "currency": scope.currency or "",
        "start_ms": _ms(start, _EPOCH_MS_MIN),
        "end_ms": _ms(end, _EPOCH_MS_MAX),
    }


def in_period(column: str = "occurred_at", *, unbounded: bool = False) -> str:
    """The condition that ``column`` lies in [start, end) (``1`` for the whole history)."""
    if unbounded:
        return "1"  # whole history: the comparisons alone cost ~5 ms on a plan's spend
    return (
        f"{column} >= fromUnixTimestamp64Milli({{start_ms:Int64}}, 'UTC') "
        f"AND {column} < fromUnixTimestamp64Milli({{end_ms:Int64}}, 'UTC')"
    )


_MONEY = Decimal("0.01")


def money(text: str) -> Decimal:
    """An amount read back from text, to the cent."""
    return Decimal(text).quantize(_MONEY)


@dataclass(frozen=True)
class Stream:
    """One aggregate query of a scope: SQL whose rows are (k, c0, c1, …) and how to read each
    value back into a ``Measures`` field (values travel as text so that every stream fits one
    UNION ALL)."""

    name: str
    sql: str
    fields: tuple[tuple[str, Callable[[str], Any]], ...]


_PARAM = re.compile(r"\{(\w+):")


def suffixed(sql: str, j: int) -> str:
    """``sql`` with its parameters renamed for branch ``j`` of a combined query."""
    # each branch of a combined query binds its own parameters: {ids:…} → {ids_<j>:…}
    return _PARAM.sub(lambda m: f"{{{m.group(1)}_{j}:", sql)


Branch = tuple[Stream, Mapping[str, Any]]


def fetch(client: Client, branches: Sequence[Branch]) -> list[list[tuple[str, dict[str, Any]]]]:
    """Run every (stream, parameters) branch in ONE query — a UNION ALL, whose branches
    ClickHouse runs in parallel — and return each branch's rows as (k, fields)."""
    out: list[list[tuple[str, dict[str, Any]]]] = [[] for _ in branches]
    if not branches:
        return out
    parts, params = [], {}
    for j, (stream, values) in enumerate(branches):
        params.update({f"{name}_{j}": value for name, value in values.items()})
        texts = ", ".join(f"toString(c{i})" for i in range(len(stream.fields)))
        parts.append(
            f"SELECT {j} AS q, toString(k) AS k, [{texts}] AS v FROM ({suffixed(stream.sql, j)})"
        )
    for j, k, texts in client.query("\nUNION ALL\n".join(parts), parameters=params).result_rows:
        fields = branches[j][0].fields
        out[j].append((k, {f: read(t) for (f, read), t in zip(fields, texts, strict=True)}))
    return out
