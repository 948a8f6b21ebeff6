"""Measurement's promotion uplift route: a campaign's baseline, actual during and after it,
incremental units, revenue and gross profit, promotion ROI and dip (``uplift``, inputs from
``warehouse.uplift``)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from services.measurement import schemas, uplift
from services.measurement.api import Fx, Reader, Store, respond
from services.measurement.warehouse.uplift import uplift_inputs
from shared.errors import NotFound
from shared.events.envelope import Identifier, UtcDatetime

router = APIRouter(prefix="/api/v1", tags=["measurement"])

WeeksBefore = Annotated[
    int,
    Query(
        ge=1,
        le=uplift.MAX_WEEKS,
        description="Weeks before the start whose average week is the baseline.",
    ),
]
WeeksAfter = Annotated[
    int,
    Query(ge=1, le=uplift.MAX_WEEKS, description="Weeks after the end measured for a dip."),
]
AsOf = Annotated[
    UtcDatetime | None,
    Query(description="Measure as of this time, RFC 3339 with offset (default: now)."),
]

_UNITS, _MONEY, _RATIO, _WEEKS = 2, 2, 6, 6


def _window(window: uplift.Measured) -> dict[str, Any]:
    return {
        "start": window.bounds.start,
        "end": window.bounds.end,
        "weeks": uplift.rounded(window.weeks, _WEEKS),
        "units": window.units,
        "revenue": uplift.rounded(window.revenue, _MONEY),
        "discounts": uplift.rounded(window.discounts, _MONEY),
    }


def _actual(result: uplift.Uplift, window: uplift.Measured) -> dict[str, Any]:
    units, revenue = result.expected(window)
    return {
        **_window(window),
        "expected_units": uplift.rounded(units, _UNITS),
        "expected_revenue": uplift.rounded(revenue, _MONEY),
    }


def _change(change: uplift.Change) -> dict[str, Any]:
    return {
        "units": uplift.rounded(change.units, _UNITS),
        "revenue": uplift.rounded(change.revenue, _MONEY),
        "gross_profit": uplift.rounded(change.gross_profit, _MONEY),
    }


@router.get("/campaigns/{campaign_id}/uplift", response_model=schemas.PromotionUplift)
async def promotion_uplift(
    campaign_id: Identifier,
    store: Store,
    fx: Fx,
    _: Reader,
    weeks_before: WeeksBefore = uplift.DEFAULT_WEEKS_BEFORE,
    weeks_after: WeeksAfter = uplift.DEFAULT_WEEKS_AFTER,
    as_of: AsOf = None,
) -> JSONResponse:
    """The promotion uplift of a campaign: the sales of the product/partner pairs it promoted
    during it against their average week before it, and after it against the same baseline."""
    now = as_of or dt.datetime.now(dt.UTC)
    inputs = await store.run(
        uplift_inputs,
        campaign_id=campaign_id,
        fx=fx,
        as_of=now,
        weeks_before=weeks_before,
        weeks_after=weeks_after,
    )
    if inputs is None:
        raise NotFound("campaign", campaign_id)
    campaign = inputs.campaign
    result = uplift.uplift(
        start_date=campaign["start_date"],
        end_date=campaign["end_date"],
        gross_margin=campaign["gross_margin"],
        cost=inputs.cost,
        sales=inputs.sales,
        as_of=now,
        weeks_before=weeks_before,
        weeks_after=weeks_after,
    )
    return respond(
        {
            "campaign_id": campaign_id,
            "name": campaign["name"],
            "currency": campaign["currency"],
            "start_date": campaign["start_date"],
            "end_date": campaign["end_date"],
            "gross_margin": campaign["gross_margin"],
            "as_of": now,
            "weeks_before": weeks_before,
            "weeks_after": weeks_after,
            "pairs": inputs.pairs,
            "missing_rates": inputs.missing_rates,
            "baseline": {
                **_window(result.before),
                "units_per_week": uplift.rounded(result.units_per_week, _UNITS),
                "revenue_per_week": uplift.rounded(result.revenue_per_week, _MONEY),
            },
            "during": _actual(result, result.during),
            "after": _actual(result, result.after),
            "incremental": _change(result.incremental),
            "dip": _change(result.dip),
            "discounts": uplift.rounded(result.discounts, _MONEY),
            "cost": uplift.rounded(result.cost, _MONEY),
            "promotion_roi": uplift.rounded(result.promotion_roi, _RATIO),
        }
    )
