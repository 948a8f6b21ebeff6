"""Measurement's HTTP routes (SPEC §5): KPIs of a campaign or a plan, and the funnel."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, TypeAdapter

from services.measurement import analytics
from services.measurement.analytics import Warehouse
from shared.auth import READERS, Principal, require
from shared.errors import DomainError, NotFound

router = APIRouter(prefix="/api/v1", tags=["measurement"])
_json = TypeAdapter(Any)

Reader = Annotated[Principal, Depends(require(*READERS))]
From = Annotated[
    AwareDatetime | None,
    Query(alias="from", description="Start of the period (inclusive), RFC 3339 with offset."),
]
To = Annotated[
    AwareDatetime | None,
    Query(alias="to", description="End of the period (exclusive), RFC 3339 with offset."),
]


def get_warehouse(request: Request) -> Warehouse:
    """The warehouse built by the app's lifespan."""
    return request.app.state.warehouse  # type: ignore[no-any-return]


Store = Annotated[Warehouse, Depends(get_warehouse)]


def _period(start: dt.datetime | None, end: dt.datetime | None) -> dict[str, dt.datetime | None]:
    if start is not None and end is not None and end <= start:
        raise DomainError("must be after 'from'", field="to", status_code=422, location="query")
    return {"start": start, "end": end}


def _respond(payload: dict[str, Any]) -> JSONResponse:
    # Decimals stay exact: pydantic writes them as strings, never as binary floats.
    return JSONResponse(_json.dump_python(payload, mode="json"))


@router.get("/kpis/campaigns/{campaign_id}")
async def campaign_kpis(
    campaign_id: str, warehouse: Store, _: Reader, start: From = None, end: To = None
) -> JSONResponse:
    """Every KPI of a campaign over [from, to) (whole history when omitted)."""
    kpis = await warehouse.run(
        analytics.campaign_kpis, campaign_id=campaign_id, **_period(start, end)
    )
    if kpis.get("name") is None:
        raise NotFound("campaign", campaign_id)
    return _respond(kpis)


@router.get("/kpis/plans/{plan_id}")
async def plan_kpis(
    plan_id: str, warehouse: Store, _: Reader, start: From = None, end: To = None
) -> JSONResponse:
    """The KPIs of a plan as one scope, with a per-campaign breakdown."""
    kpis = await warehouse.run(analytics.plan_kpis, plan_id=plan_id, **_period(start, end))
    if kpis.get("name") is None and not kpis.get("campaigns"):
        raise NotFound("plan", plan_id)
    return _respond(kpis)


@router.get("/funnel")
async def funnel(
    warehouse: Store,
    _: Reader,
    campaign_id: str | None = None,
    start: From = None,
    end: To = None,
) -> JSONResponse:
    """Leads reaching each funnel stage and the stage conversions (all campaigns if omitted)."""
    return _respond(
        await warehouse.run(analytics.funnel, campaign_id=campaign_id, **_period(start, end))
    )
