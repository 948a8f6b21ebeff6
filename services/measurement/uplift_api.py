"""Measurement's promotion uplift route: a campaign's baseline, actual during and after it,
incremental units, revenue and gross profit, promotion ROI and dip (``uplift``, inputs from
``warehouse.uplift``)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from services.measurement import uplift, uplift_models
from services.measurement.api import Fx, Reader, Store, respond
from services.measurement.warehouse.uplift import UpliftInputs, uplift_inputs
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

ControlGroup = Annotated[
    Literal["none", "partners"],
    Query(
        description="`partners`: also measure a control group — partners outside the promotion "
        "selling the same products — and use its baseline when it can serve."
    ),
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


def _actual(window: uplift.Measured, expected: uplift.Expected) -> dict[str, Any]:
    return {
        **_window(window),
        "expected_units": uplift.rounded(expected.units, _UNITS),
        "expected_revenue": uplift.rounded(expected.revenue, _MONEY),
    }


def _expected(expected: uplift.Expected) -> dict[str, Any]:
    return {
        "units": uplift.rounded(expected.units, _UNITS),
        "revenue": uplift.rounded(expected.revenue, _MONEY),
    }


def _estimate(estimate: uplift.Estimate | None) -> dict[str, Any] | None:
    if estimate is None:
        return None
    return {
        "expected_during": _expected(estimate.during),
        "expected_after": _expected(estimate.after),
        "incremental": _change(estimate.incremental),
        "dip": _change(estimate.dip),
        "net": _change(estimate.net),
        "promotion_roi": uplift.rounded(estimate.promotion_roi, _RATIO),
        "net_promotion_roi": uplift.rounded(estimate.net_promotion_roi, _RATIO),
    }


def _change_ratio(change: uplift.Expected) -> dict[str, Any]:
    return {
        "units": uplift.rounded(change.units, _RATIO),
        "revenue": uplift.rounded(change.revenue, _RATIO),
    }


def _control(result: uplift.Uplift, inputs: UpliftInputs) -> dict[str, Any] | None:
    control = result.control
    if control is None:
        return None
    return {
        "partners": inputs.control_partners,
        "pairs": inputs.control_pairs,
        "used": control.estimate is not None,
        "reason": control.reason,
        "before": _window(control.before),
        "during": _window(control.during),
        "after": _window(control.after),
        "during_change": _change_ratio(control.during_change),
        "after_change": _change_ratio(control.after_change),
    }


def _change(change: uplift.Change) -> dict[str, Any]:
    return {
        "units": uplift.rounded(change.units, _UNITS),
        "revenue": uplift.rounded(change.revenue, _MONEY),
        "gross_profit": uplift.rounded(change.gross_profit, _MONEY),
    }


@router.get("/campaigns/{campaign_id}/uplift", response_model=uplift_models.PromotionUplift)
async def promotion_uplift(
    campaign_id: Identifier,
    store: Store,
    fx: Fx,
    _: Reader,
    weeks_before: WeeksBefore = uplift.DEFAULT_WEEKS_BEFORE,
    weeks_after: WeeksAfter = uplift.DEFAULT_WEEKS_AFTER,
    as_of: AsOf = None,
    control: ControlGroup = "none",
) -> JSONResponse:
    """The promotion uplift of a campaign: the sales of the product/partner pairs it promoted
    during it against their average week before it (or that baseline moved as a control group
    of partners without the promotion moved), after it against the same baseline, the dip and
    the net of both."""
    now = as_of or dt.datetime.now(dt.UTC)
    inputs = await store.run(
        uplift_inputs,
        campaign_id=campaign_id,
        fx=fx,
        as_of=now,
        weeks_before=weeks_before,
        weeks_after=weeks_after,
        control=control == "partners",
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
        control_sales=inputs.control,
    )
    estimate = result.estimate
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
            "during": _actual(result.during, estimate.during),
            "after": _actual(result.after, estimate.after),
            "incremental": _change(estimate.incremental),
            "dip": _change(estimate.dip),
            "net": _change(estimate.net),
            "discounts": uplift.rounded(result.discounts, _MONEY),
            "cost": uplift.rounded(result.cost, _MONEY),
            "promotion_roi": uplift.rounded(estimate.promotion_roi, _RATIO),
            "net_promotion_roi": uplift.rounded(estimate.net_promotion_roi, _RATIO),
            "baseline_used": result.used,
            "baselines": {
                "before": _estimate(result.baseline),
                "control": _estimate(result.control.estimate if result.control else None),
            },
            "control": _control(result, inputs),
        }
    )
