"""Response model of the sales-target forecast route (``target_forecast_api``), for the OpenAPI:
what each field means and a worked example (README "Sales-target forecast").

The route answers with exact decimals serialised as JSON strings (``api.respond``); these
models document that shape, they do not produce it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_IN = " In the node's `currency`."


class UnitPipelineOut(BaseModel):
    """The open leads of the unit's campaigns and what they are expected to bring within the
    period — from `as_of` (or the period's start, if later) to its end — by the pipeline
    forecast's method."""

    campaigns: list[str] = Field(
        description="The campaigns planned against the unit or a unit beneath it "
        "(`sales_unit_id`; of the brand, when one is asked for)."
    )
    open_leads: int
    customers: Decimal = Field(description="Expected new customers within the period.")
    revenue: Decimal | None = Field(
        description="Expected revenue from them, to the cent; null when a lead that may convert "
        "has no value (no expected value, no average check) or no FX rate." + _IN
    )
    missing_rates: list[str] = Field(
        description="Currencies of lead values or sales with no rate to the node's currency."
    )


class UnitForecast(BaseModel):
    """One unit's forecast to the period's end."""

    unit_id: str
    name: str
    kind: str
    owner: str
    code: str | None = Field(description="The partner_id / rep_id / region of its sales.")
    target_id: str | None
    target: Decimal | None = Field(description="Its target for the period and brand, if any.")
    currency: str = Field(description="The target's currency, else MRM_CURRENCY.")
    sales: Decimal = Field(
        description="Actual sales to `as_of` attributed to the unit (or beneath it)." + _IN
    )
    unconverted: dict[str, Decimal] = Field(
        description="Sales in currencies without a rate, apart (not in any figure)."
    )
    run_rate: Decimal | None = Field(
        description="All sales × the period's length / elapsed time (the progress forecast); "
        "null before the period starts." + _IN
    )
    campaign_sales: Decimal = Field(
        description="Of `sales`, those attributed to one of the unit's campaigns." + _IN
    )
    other_sales: Decimal = Field(description="sales − campaign_sales." + _IN)
    other_run_rate: Decimal | None = Field(
        description="other_sales × the period's length / elapsed time; null before the period "
        "starts." + _IN
    )
    pipeline: UnitPipelineOut | None = Field(description="Null when the unit has no campaigns.")
    forecast: Decimal | None = Field(
        description="campaign_sales + pipeline revenue + other_run_rate, to the cent; null when "
        "a part is." + _IN
    )
    gap: Decimal | None = Field(description="target − forecast (positive: short of it).")
    forecast_share: Decimal | None = Field(description="forecast / target, 6 places.")
    on_track: bool | None = Field(description="forecast ≥ target; null without either.")
    children: list[UnitForecast]


def _unit(key: str, kind: str, code: str | None, **figures: Any) -> dict[str, Any]:
    return {
        "unit_id": key,
        "name": key,
        "kind": kind,
        "owner": f"owner-{key}",
        "code": code,
        "currency": "EUR",
        "unconverted": {},
        "target_id": None,
        "target": None,
        "gap": None,
        "forecast_share": None,
        "on_track": None,
        "children": [],
        **figures,
    }


_PIPELINE = {
    "campaigns": ["spring-leads"],
    "open_leads": 2,
    "customers": "0.45",
    "revenue": "75.00",
    "missing_rates": [],
}
_REP = _unit(
    "rep-a",
    "rep",
    "REP-A",
    sales="100.00",
    run_rate="310.00",
    campaign_sales="100.00",
    other_sales="0.00",
    other_run_rate="0.00",
    pipeline=_PIPELINE,
    forecast="175.00",
)
_EMEA = _unit(
    "emea",
    "region",
    "EMEA",
    target_id="t-emea",
    target="300.00",
    sales="150.00",
    run_rate="465.00",
    campaign_sales="100.00",
    other_sales="50.00",
    other_run_rate="155.00",
    pipeline=_PIPELINE,
    forecast="330.00",
    gap="-30.00",
    forecast_share="1.100000",
    on_track=True,
    children=[_REP],
)
_EXAMPLE: dict[str, Any] = {
    "period": "2027-05",
    "period_start": "2027-05-01",
    "period_end": "2027-05-31",
    "brand": None,
    "as_of": "2027-05-11T00:00:00Z",
    "lookback_days": None,
    "elapsed_share": "0.322581",
    "units": [_EMEA],
}


class SalesTargetForecast(BaseModel):
    """The unit tree of a period with every node's forecast to the period's end (README
    "Sales-target forecast")."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    period: str
    period_start: dt.date
    period_end: dt.date = Field(description="The period's last day (inclusive).")
    brand: str | None = Field(description="The brand's targets and sales (null: all brands).")
    as_of: dt.datetime = Field(description="Sales after it are not counted; the pipeline starts.")
    lookback_days: int | None = Field(
        description="Days of history the pipeline's rates are measured over (null: all)."
    )
    elapsed_share: Decimal = Field(description="Share of the period elapsed by `as_of`.")
    units: list[UnitForecast] = Field(description="Root units, each with its children.")
