"""Measurement's pipeline forecast route: expected customers and revenue per week ahead from a
campaign's, plan's or channel's open leads (``pipeline``, inputs from ``warehouse.pipeline``)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from services.measurement import pipeline, schemas
from services.measurement.api import Fx, Reader, Store, respond
from services.measurement.warehouse.pipeline import pipeline_inputs
from shared.errors import DomainError, NotFound
from shared.events.envelope import Channel, Identifier, UtcDatetime

router = APIRouter(prefix="/api/v1", tags=["measurement"])

Weeks = Annotated[int, Query(ge=1, le=pipeline.MAX_WEEKS, description="Weeks ahead to forecast.")]
Lookback = Annotated[
    int | None,
    Query(
        ge=1,
        le=36_500,
        description="Days of history before `as_of` to measure the rates over (default: all).",
    ),
]
AsOf = Annotated[
    UtcDatetime | None,
    Query(description="Forecast as of this time, RFC 3339 with offset (default: now)."),
]


def _scope(campaign_id: str | None, plan_id: str | None, channel: str | None) -> tuple[str, str]:
    """The one scope asked for; 422 naming the field when none (campaign_id) or several (the
    second one) are given."""
    params = (("campaign", "campaign_id", campaign_id), ("plan", "plan_id", plan_id))
    given = [(s, f, v) for s, f, v in (*params, ("channel", "channel", channel)) if v is not None]
    if len(given) != 1:
        raise DomainError(
            "exactly one of campaign_id, plan_id, channel is required",
            field=given[1][1] if given else "campaign_id",
            status_code=422,
            location="query",
        )
    scope, _, value = given[0]
    return scope, value


def _amounts(expected: pipeline.Amounts) -> dict[str, Any]:
    return {"customers": expected.customers, "revenue": expected.revenue}


@router.get("/forecast/pipeline", response_model=schemas.PipelineForecast)
async def pipeline_forecast(
    store: Store,
    fx: Fx,
    _: Reader,
    campaign_id: Identifier | None = None,
    plan_id: Identifier | None = None,
    channel: Channel | None = None,
    weeks: Weeks = pipeline.DEFAULT_WEEKS,
    lookback_days: Lookback = None,
    as_of: AsOf = None,
) -> JSONResponse:
    """Expected customers and revenue per week ahead from the open leads of one campaign, plan
    or channel, by the stage conversions and stage-to-customer times measured in its history."""
    scope, scope_id = _scope(campaign_id, plan_id, channel)
    now = as_of or dt.datetime.now(dt.UTC)
    inputs = await store.run(
        pipeline_inputs, scope=scope, id=scope_id, fx=fx, as_of=now, lookback_days=lookback_days
    )
    if inputs is None:
        raise NotFound(scope, scope_id)
    result = pipeline.forecast(leads=inputs.leads, history=inputs.history, as_of=now, weeks=weeks)
    return respond(
        {
            "scope": scope,
            "id": scope_id,
            "as_of": now,
            "lookback_days": lookback_days,
            "currency": inputs.currency,
            "missing_rates": inputs.missing_rates,
            "average_check": inputs.history.average_check,
            "open_leads": result.open_leads,
            "weeks": [
                {"week": w.week, "week_start": w.start, "week_end": w.end, **_amounts(w.expected)}
                for w in result.weeks
            ],
            "totals": _amounts(result.totals),
            "later": _amounts(result.later),
            "rates": [vars(rate) for rate in result.rates],
        }
    )
