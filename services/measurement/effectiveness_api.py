"""Segment effectiveness over HTTP: the campaigns grouped by the customer segment they target,
compared side by side (``warehouse.target_segments``)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.measurement import warehouse
from services.measurement.api import (
    From,
    Fx,
    Reader,
    ReportingCurrency,
    Store,
    To,
    period_of,
    reporting_in,
    respond,
)
from services.measurement.schemas import Currencies, money_field, ratio_field
from shared.errors import NotFound
from shared.events.envelope import Identifier

router = APIRouter(prefix="/api/v1", tags=["segments"])


class Effectiveness(BaseModel):
    """What the campaigns of a segment gave over the period, taken as one scope."""

    spend: Decimal | None = money_field("Σ spend")
    budget: Decimal | None = money_field("Budget of the segment's campaigns")
    leads: int = Field(description="Distinct leads reaching lead or later.")
    mql: int = Field(description="Distinct leads reaching MQL or later.")
    sql: int = Field(description="Distinct leads reaching SQL or later.")
    new_customers: int = Field(
        description="Customers whose first sale ever is in the period and attributed to one of "
        "the segment's campaigns."
    )
    customers: int = Field(description="Distinct customers with a sale attributed to them.")
    revenue: Decimal | None = money_field("Σ sales")
    gross_profit: Decimal | None = money_field("Σ sale × its campaign's gross margin")
    cpl: Decimal | None = money_field("Cost per lead: spend / leads")
    cac: Decimal | None = money_field("Customer acquisition cost: spend / new customers")
    romi: Decimal | None = ratio_field("(gross profit − spend) / spend")
    lead_to_customer: Decimal | None = ratio_field(
        "Leads reaching the customer stage / leads reaching lead or later"
    )


class TargetingCampaign(BaseModel):
    """A campaign aiming at the segment (overlapping the period)."""

    campaign_id: str
    plan_id: str
    name: str
    channel: str
    brand: str | None
    status: str
    currency: str
    start_date: dt.date
    end_date: dt.date


class SegmentRow(Effectiveness):
    """One target segment and its campaigns."""

    target_segment: str | None = Field(
        description="The segment (`rfm:<name>` or a rule-based segment's id); null: the "
        "campaigns without a target segment."
    )
    campaigns: list[TargetingCampaign] = Field(description="By start date, then name.")
    missing_rates: list[str] = Field(
        description="Currencies of this segment's amounts without a rate to `currency`."
    )
    by_currency: dict[str, Effectiveness] = Field(
        description="Currency → the same figures for the segment's share in it, in that currency."
    )


class SegmentEffectiveness(Currencies):
    """Campaigns grouped by target segment, each group's KPIs side by side."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "plan_id": None,
                    "currency": "EUR",
                    "fx_rates": {},
                    "missing_rates": [],
                    "start": "2027-03-01T00:00:00Z",
                    "end": "2027-04-01T00:00:00Z",
                    "segments": [
                        {
                            "target_segment": "rfm:champions",
                            "campaigns": [
                                {
                                    "campaign_id": "c-1",
                                    "plan_id": "p-1",
                                    "name": "VIP preview",
                                    "channel": "email",
                                    "brand": "Acme",
                                    "status": "active",
                                    "currency": "EUR",
                                    "start_date": "2027-03-01",
                                    "end_date": "2027-03-31",
                                }
                            ],
                            "spend": "300.00",
                            "budget": "1000.00",
                            "leads": 3,
                            "mql": 2,
                            "sql": 1,
                            "new_customers": 1,
                            "customers": 2,
                            "revenue": "900.00",
                            "gross_profit": "450.00",
                            "cpl": "100.00",
                            "cac": "300.00",
                            "romi": "0.500000",
                            "lead_to_customer": "0.333333",
                            "missing_rates": [],
                            "by_currency": {},
                        }
                    ],
                }
            ]
        }
    )

    plan_id: str | None = Field(description="The plan the campaigns are taken from, if any.")
    start: dt.datetime | None
    end: dt.datetime | None
    segments: list[SegmentRow] = Field(
        description="One row per target segment, sorted by name; the campaigns without a target "
        "last (`target_segment` null). Only campaigns overlapping the period take part."
    )


@router.get("/segments/effectiveness", response_model=SegmentEffectiveness)
async def segment_effectiveness(
    store: Store,
    fx: Fx,
    _: Reader,
    plan_id: Identifier | None = None,
    start: From = None,
    end: To = None,
    currency: ReportingCurrency = None,
) -> JSONResponse:
    """Per target segment (and no target), the campaigns aiming at it that overlap [from, to)
    — within one plan when ``plan_id`` is given — and what they gave in the period: spend,
    leads, MQL, SQL, customers, revenue, gross profit, CPL, CAC, ROMI and lead → customer
    conversion, in one currency (default: the plan's, else MRM_CURRENCY) and per currency."""
    found = await store.run(
        warehouse.segment_effectiveness,
        plan_id=plan_id,
        **period_of(start, end),
        **reporting_in(currency, fx),
    )
    if found is None:
        raise NotFound("plan", plan_id or "")
    return respond(found)
