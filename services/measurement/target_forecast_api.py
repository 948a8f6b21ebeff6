"""Measurement's sales-target forecast route: the unit tree of a period with each node's sales
to date, run rate, pipeline of its campaigns' open leads and the forecast to the period's end
against its target (``target_forecast``, inputs from ``warehouse.target_forecast``)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.measurement import target_forecast
from services.measurement.api import Fx, Reader, Store, respond
from services.measurement.domain import ratio
from services.measurement.pipeline_api import AsOf, Lookback
from services.measurement.progress import pace
from services.measurement.progress_api import Brand, Period, unit_fields
from services.measurement.target_forecast_models import SalesTargetForecast
from services.measurement.warehouse.target_forecast import target_forecast_inputs
from shared.periods import period_bounds

router = APIRouter(prefix="/api/v1", tags=["measurement"])


def _pipeline(found: target_forecast.UnitPipeline | None) -> dict[str, Any] | None:
    if found is None:
        return None
    return {
        "campaigns": list(found.campaigns),
        "open_leads": found.open_leads,
        "customers": found.expected.customers,
        "revenue": found.expected.revenue,
        "missing_rates": list(found.missing_rates),
    }


def _node(node: target_forecast.NodeForecast) -> dict[str, Any]:
    return {
        **unit_fields(node),
        "run_rate": node.run_rate,
        "campaign_sales": node.campaign_sales,
        "other_sales": node.other_sales,
        "other_run_rate": node.other_run_rate,
        "pipeline": _pipeline(node.pipeline),
        "forecast": node.forecast,
        "gap": node.gap,
        "forecast_share": node.forecast_share,
        "on_track": node.on_track,
        "children": [_node(child) for child in node.children],
    }


@router.get("/sales-targets/forecast", response_model=SalesTargetForecast)
async def sales_target_forecast(
    store: Store,
    fx: Fx,
    _: Reader,
    period: Period,
    brand: Brand = None,
    as_of: AsOf = None,
    lookback_days: Lookback = None,
) -> JSONResponse:
    """Every unit's sales to date, run rate and open-lead pipeline added up to a forecast of its
    sales at the period's end, against its target."""
    start, end = period_bounds(period)
    now = as_of or dt.datetime.now(dt.UTC)
    inputs = await store.run(
        target_forecast_inputs,
        period=period,
        brand=brand,
        start=start,
        end=end,
        as_of=now,
        fx=fx,
        lookback_days=lookback_days,
    )
    pipelines = {
        unit_id: target_forecast.unit_pipeline(
            campaigns=inputs.campaigns_of[unit_id],
            leads=found.leads,
            history=found.history,
            as_of=now,
            start=start,
            end=end,
            missing_rates=found.missing_rates,
        )
        for unit_id, found in inputs.pipelines.items()
    }
    tree = target_forecast.forecast_tree(
        units=inputs.units,
        targets=inputs.targets,
        sales=inputs.sales,
        campaigns_of=inputs.campaigns_of,
        pipelines=pipelines,
        brand=brand,
        start=start,
        end=end,
        now=now,
        fx=fx,
    )
    elapsed = pace(start=start, end=end, now=now, sales=Decimal(0)).elapsed_share
    return respond(
        {
            "period": period,
            "period_start": start,
            "period_end": end,
            "brand": brand,
            "as_of": now,
            "lookback_days": lookback_days,
            "elapsed_share": ratio(elapsed, 1),
            "units": [_node(node) for node in tree],
        }
    )
