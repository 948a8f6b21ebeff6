"""What the sales-target forecast (``services.measurement.target_forecast``) needs of a period:
the units and targets, the period's sales to ``as_of`` summed per campaign and attribution, the
campaigns planned against a unit, and each such unit's pipeline inputs (``warehouse.pipeline``).

Sales are read ``FINAL``, so a redelivered sale counts once; campaigns ``FINAL`` (latest
version), so a campaign moved to another unit counts for the new one only.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from services.measurement import target_forecast
from services.measurement.progress import SalesTarget, Unit
from services.measurement.warehouse._sql import Scope
from services.measurement.warehouse.pipeline import PipelineInputs, campaigns_inputs
from services.measurement.warehouse.sales_targets import sales_units, targets_of_period
from shared.money import FxRates
from shared.sales_attribution import SaleGroup


@dataclass(frozen=True)
class TargetForecastInputs:
    """A period's units, targets, sales by campaign ('' for none), each unit's campaigns and
    the pipeline inputs of the units that have campaigns (in the unit's currency)."""

    units: list[Unit]
    targets: list[SalesTarget]
    sales: dict[str, list[SaleGroup]]
    campaigns_of: dict[str, tuple[str, ...]]
    pipelines: dict[str, PipelineInputs]


def campaign_units(client: Client, *, brand: str | None) -> dict[str, str]:
    """campaign_id → the sales unit it plans against, for the campaigns that name one (of
    ``brand`` only, when given)."""
    sql = """SELECT campaign_id, sales_unit_id FROM campaigns FINAL
        WHERE sales_unit_id != '' AND ({brand:String} = '' OR brand = {brand:String})"""
    rows = client.query(sql, parameters={"brand": brand or ""}).result_rows
    return {str(c): str(u) for c, u in rows}


def campaign_sale_groups(
    client: Client, *, start: dt.date, until: dt.datetime
) -> dict[str, list[SaleGroup]]:
    """The sales from the day ``start`` to ``until`` (exclusive), summed per campaign ('' for
    none), rep, partner, region, brand and currency."""
    sql = """SELECT campaign_id, rep_id, partner_id, region, brand, currency, sum(amount)
        FROM sales FINAL
        WHERE occurred_at >= toDateTime64({start:Date}, 3, 'UTC')
            AND occurred_at < fromUnixTimestamp64Milli({until_ms:Int64}, 'UTC')
        GROUP BY campaign_id, rep_id, partner_id, region, brand, currency"""
    params = {"start": start, "until_ms": int(until.timestamp() * 1000)}
    out: dict[str, list[SaleGroup]] = defaultdict(list)
    for c, r, p, g, b, cur, a in client.query(sql, parameters=params).result_rows:
        out[c].append(SaleGroup(rep_id=r, partner_id=p, region=g, brand=b, currency=cur, amount=a))
    return dict(out)


def target_forecast_inputs(
    client: Client,
    *,
    period: str,
    brand: str | None,
    start: dt.date,
    end: dt.date,
    as_of: dt.datetime,
    fx: FxRates,
    lookback_days: int | None = None,
) -> TargetForecastInputs:
    """Everything the forecast of ``period`` (``start``..``end``) as of ``as_of`` needs; the
    pipelines' history is the last ``lookback_days`` before ``as_of`` (all when ``None``)."""
    units = sales_units(client)
    targets = targets_of_period(client, period=period)
    campaigns_of = target_forecast.campaigns_of_units(units, campaign_units(client, brand=brand))
    until = min(as_of, target_forecast.period_end(end))
    currency_of = {t.unit_id: t.currency for t in targets if t.brand == brand}
    pipelines: dict[str, PipelineInputs] = {}
    known: dict[tuple[tuple[str, ...], str], PipelineInputs] = {}
    for unit_id, ids in sorted(campaigns_of.items()):
        currency = currency_of.get(unit_id, fx.base)
        if (ids, currency) not in known:  # a unit above holds the same campaigns: ask once
            known[ids, currency] = campaigns_inputs(
                client,
                covered=Scope(ids),
                currency=currency,
                fx=fx,
                as_of=as_of,
                lookback_days=lookback_days,
            )
        pipelines[unit_id] = known[ids, currency]
    return TargetForecastInputs(
        units=units,
        targets=targets,
        sales=campaign_sale_groups(client, start=start, until=until),
        campaigns_of=campaigns_of,
        pipelines=pipelines,
    )
