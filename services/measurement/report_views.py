"""The data of the plan report's brand, partner, segment and target-segment sections, read
through the API's own queries (``warehouse.sales_by``, ``customers.customer_sales`` +
``segments``, ``warehouse.segment_effectiveness``) and handed to ``report_trade`` to render;
the sections cover the report's days (``report_sections.window``: [from, to), a side not given
taken from the plan's period)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from services.measurement import report_sections, report_trade, segments, warehouse
from services.measurement.warehouse import Warehouse, customers
from services.measurement.warehouse._dims import plan_period
from shared.money import FxRates


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


async def trade_views(
    store: Warehouse,
    fx: FxRates,
    *,
    plan: dict[str, Any],
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> str:
    """The four sections' HTML, in the plan's currency over the report's days."""
    period = await store.run(plan_period, plan_id=str(plan["plan_id"]))
    days = report_sections.window(period=period, start=start, end=end)
    if days is None:
        return report_trade.no_period_section()
    first = _midnight(days[0])
    after = _midnight(days[1] + dt.timedelta(days=1))
    currency = str(plan.get("currency") or fx.base)
    sales = {"fx": fx, "currency": currency, "start": first, "end": after}
    brands = await store.run(warehouse.sales_by, by="brand", **sales)
    partners = {
        kind: await store.run(warehouse.sales_by, by="partner", sale_kind=kind, **sales)
        for kind in (None, "sell_in", "sell_out")
    }
    length = min((days[1] - days[0]).days + 1, segments.MAX_DAYS)
    window = segments.Window(as_of=days[1], days=length)
    bought = await store.run(customers.customer_sales, start=window.start, end=window.end)
    overview = segments.overview(segments.segment(bought, window=window, currency=currency, fx=fx))
    covered = (window.start.date(), days[1])
    daily = await store.run(
        warehouse.plan_daily_spend, plan_id=str(plan["plan_id"]), start=first, end=after
    )
    plan_spend = report_trade.plan_spend_by_brand(
        campaigns=list(plan.get("campaigns") or ()), daily=daily
    )
    targets = await store.run(
        warehouse.segment_effectiveness,
        fx=fx,
        currency=currency,
        plan_id=str(plan["plan_id"]),
        start=first,
        end=after,
    )
    return (
        report_trade.brand_section(brands=brands, plan_spend=plan_spend, days=days)
        + report_trade.partner_section(
            total=partners[None],
            sell_in=partners["sell_in"],
            sell_out=partners["sell_out"],
            days=days,
        )
        + report_trade.segment_section(overview=overview, days=covered)
        + report_trade.target_segment_section(effectiveness=targets, days=days)
    )
