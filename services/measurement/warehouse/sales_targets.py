"""The sales-target cascade in the warehouse: units, targets, and sales summed per attribution.

``progress`` (with ``shared.sales_attribution``) does the attribution and the arithmetic; these
queries only read the latest units and targets (``FINAL``: one row per unit and target) and the
sales of a period grouped by the fields a sale is attributed by, each event_id once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from services.measurement.progress import SalesTarget, Unit
from shared.sales_attribution import SaleGroup


def sales_units(client: Client) -> list[Unit]:
    """Every unit of the sales-target tree, latest state."""
    sql = """SELECT unit_id, kind, name, owner, parent_id, code FROM sales_units FINAL
        ORDER BY unit_id"""
    return [
        Unit(unit_id=u, kind=k, name=n, owner=o, parent_id=p or None, code=c or None)
        for u, k, n, o, p, c in client.query(sql).result_rows
    ]


_TARGET_COLUMNS = """target_id, unit_id, period, period_start, period_end, amount, currency,
    brand, version"""


def _targets(rows: Sequence[Sequence[object]]) -> list[SalesTarget]:
    return [
        SalesTarget(
            target_id=str(t),
            unit_id=str(u),
            period=str(p),
            period_start=s,  # type: ignore[arg-type]
            period_end=e,  # type: ignore[arg-type]
            amount=a,  # type: ignore[arg-type]
            currency=str(c),
            brand=str(b) or None,
            version=int(v),  # type: ignore[call-overload]
        )
        for t, u, p, s, e, a, c, b, v in rows
    ]


def targets_of_period(client: Client, *, period: str) -> list[SalesTarget]:
    """The targets of a period (every brand), latest version."""
    sql = f"""SELECT {_TARGET_COLUMNS} FROM sales_targets FINAL
        WHERE period = {{period:String}} ORDER BY target_id"""
    return _targets(client.query(sql, parameters={"period": period}).result_rows)


def targets_running(client: Client, *, on: dt.date) -> list[SalesTarget]:
    """The targets whose period includes the day ``on``, latest version."""
    sql = f"""SELECT {_TARGET_COLUMNS} FROM sales_targets FINAL
        WHERE period_start <= {{on:Date}} AND period_end >= {{on:Date}} ORDER BY target_id"""
    return _targets(client.query(sql, parameters={"on": on}).result_rows)


def targets_overlapping(client: Client, *, start: dt.date, end: dt.date) -> list[SalesTarget]:
    """The targets whose period shares a day with ``start``..``end`` (inclusive), latest version."""
    sql = f"""SELECT {_TARGET_COLUMNS} FROM sales_targets FINAL
        WHERE period_start <= {{end:Date}} AND period_end >= {{start:Date}} ORDER BY target_id"""
    return _targets(client.query(sql, parameters={"start": start, "end": end}).result_rows)


@dataclass(frozen=True)
class WindowTargets:
    """What the progress of every target period overlapping some days needs: the units, the
    targets, and each such period's sales (period → groups)."""

    units: list[Unit]
    targets: list[SalesTarget]
    groups: dict[str, list[SaleGroup]]


def targets_of_window(client: Client, *, start: dt.date, end: dt.date) -> WindowTargets:
    """The units, the targets of the periods overlapping ``start``..``end`` and every such
    period's sales, whole periods (a query per period)."""
    targets = targets_overlapping(client, start=start, end=end)
    periods = {t.period: (t.period_start, t.period_end) for t in targets}
    return WindowTargets(
        units=sales_units(client) if targets else [],
        targets=targets,
        groups={
            period: sale_groups(client, start=first, end=last)
            for period, (first, last) in sorted(periods.items())
        },
    )


def sale_groups(client: Client, *, start: dt.date, end: dt.date) -> list[SaleGroup]:
    """The sales of the days ``start``..``end`` (inclusive) summed per rep, partner, region,
    brand and currency."""
    sql = """SELECT rep_id, partner_id, region, brand, currency, sum(amount) FROM sales FINAL
        WHERE occurred_at >= toDateTime64({start:Date}, 3, 'UTC')
            AND occurred_at < toDateTime64({end:Date}, 3, 'UTC') + INTERVAL 1 DAY
        GROUP BY rep_id, partner_id, region, brand, currency"""
    rows = client.query(sql, parameters={"start": start, "end": end}).result_rows
    return [
        SaleGroup(rep_id=r, partner_id=p, region=g, brand=b, currency=c, amount=a)
        for r, p, g, b, c, a in rows
    ]
