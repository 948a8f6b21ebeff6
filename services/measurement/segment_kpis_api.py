"""Measurement's per-segment KPI routes: what a segment's members bought over a period (revenue,
gross profit, orders, buyers, average check, new customers), the funnel of their leads, and the
same per day or week. Members are those of the segment as of the period's last day
(``rule_segments``); the sums come from ``warehouse.segment_members``."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.measurement import rule_segments
from services.measurement.api import (
    From,
    Fx,
    Reader,
    ReportingCurrency,
    Required,
    RequiredTo,
    Store,
    To,
    period_of,
    reporting_in,
    respond,
)
from services.measurement.rule_segments_api import AsOf, SegmentPath, definition_or_404
from services.measurement.schemas import Currencies
from services.measurement.warehouse import MAX_SERIES_BUCKETS, segment_members, series_buckets
from shared.errors import DomainError
from shared.money import FxRates

router = APIRouter(prefix="/api/v1", tags=["segments"])

_FUNNEL_EXAMPLE = {
    "visitor": 40,
    "lead": 30,
    "mql": 20,
    "sql": 12,
    "sal": 10,
    "opportunity": 6,
    "customer": 3,
}
_KPIS_EXAMPLE: dict[str, Any] = {
    "revenue": "12500.00",
    "gross_profit": "7800.00",
    "discounts": "300.00",
    "orders": 25,
    "customers": 10,
    "average_check": "500.00",
    "repeat_purchase_rate": "0.600000",
    "new_customers": 2,
    "leads": 30,
    "funnel": _FUNNEL_EXAMPLE,
    "lost": 4,
    "conversions": {"lead_to_mql": "0.666667", "lead_to_customer": "0.100000"},
    "by_currency": {
        "USD": {
            "revenue": "12500.00",
            "gross_profit": "7800.00",
            "discounts": "300.00",
            "orders": 25,
        }
    },
}


class SegmentKpis(Currencies):
    """A segment's members' KPIs over a period, with their leads' funnel."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "segment_id": "large-tech",
                    "name": "Large tech customers",
                    "as_of": "2027-03-31",
                    "members": 10,
                    "start": "2027-03-01T00:00:00Z",
                    "end": "2027-04-01T00:00:00Z",
                    "currency": "USD",
                    "fx_rates": {},
                    "missing_rates": [],
                    **_KPIS_EXAMPLE,
                }
            ]
        }
    )

    segment_id: str
    name: str
    as_of: dt.date = Field(description="The day membership was evaluated as of.")
    members: int
    start: dt.datetime | None
    end: dt.datetime | None
    revenue: Decimal | None = Field(description="Σ members' sales (null: a currency lacks a rate).")
    gross_profit: Decimal | None = Field(description="Revenue × its campaign's gross margin.")
    discounts: Decimal | None
    orders: int
    customers: int = Field(description="Members with at least one sale in the period.")
    average_check: Decimal | None
    repeat_purchase_rate: Decimal | None
    new_customers: int = Field(description="Members whose first sale ever is in the period.")
    leads: int = Field(description="Leads naming a member as customer, reaching lead or later.")
    funnel: dict[str, int] = Field(description="Those leads reaching each stage or later.")
    lost: int
    conversions: dict[str, Decimal | None]
    by_currency: dict[str, dict[str, Any]] = Field(description="The sums per sale currency.")


class SegmentPoint(BaseModel):
    """The members' KPIs of one day or week."""

    start: dt.date
    revenue: Decimal | None
    gross_profit: Decimal | None
    orders: int
    customers: int
    average_check: Decimal | None
    new_customers: int
    leads: int


class SegmentSeries(Currencies):
    """A segment's members' KPIs per day or week."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "segment_id": "rfm:champions",
                    "as_of": "2027-03-14",
                    "members": 120,
                    "bucket": "week",
                    "start": "2027-03-01T00:00:00Z",
                    "end": "2027-03-15T00:00:00Z",
                    "currency": "USD",
                    "fx_rates": {},
                    "missing_rates": [],
                    "points": [
                        {
                            "start": "2027-03-01",
                            "revenue": "5400.00",
                            "gross_profit": "5400.00",
                            "orders": 9,
                            "customers": 8,
                            "average_check": "600.00",
                            "new_customers": 0,
                            "leads": 3,
                        },
                    ],
                }
            ]
        }
    )

    segment_id: str
    as_of: dt.date
    members: int
    bucket: str
    start: dt.datetime
    end: dt.datetime
    points: list[SegmentPoint]


def _as_of(as_of: dt.date | None, end: dt.datetime | None) -> dt.date:
    """Membership day: given, else the period's last day, else today."""
    if as_of is not None:
        return as_of
    if end is not None:
        return (end.astimezone(dt.UTC) - dt.timedelta(microseconds=1)).date()
    return dt.datetime.now(dt.UTC).date()


async def _members(
    store: Store, fx: FxRates, *, segment_id: str, as_of: dt.date
) -> rule_segments.Membership:
    definition = await definition_or_404(store, segment_id)
    return await rule_segments.membership(store, fx, definition=definition, as_of=as_of, full=False)


@router.get("/kpis/segments/{segment_id}", response_model=SegmentKpis)
async def segment_kpis(
    segment_id: SegmentPath,
    store: Store,
    fx: Fx,
    _: Reader,
    start: From = None,
    end: To = None,
    as_of: AsOf = None,
    currency: ReportingCurrency = None,
) -> JSONResponse:
    """What the segment's members bought over [from, to) — revenue, gross profit, discounts,
    orders, buyers, average check, repeat purchase rate, new customers — and the funnel of the
    leads naming a member as customer; members as of `as_of` (default: the period's last day,
    or today)."""
    period = period_of(start, end)
    reporting_in(currency, fx)
    found = await _members(store, fx, segment_id=segment_id, as_of=_as_of(as_of, end))
    measured = await store.run(segment_members.member_measures, members=found.ids, **period)
    whole = measured.get("", segment_members.MemberMeasures())
    to = rule_segments.conversion_of([whole], currency=currency or fx.base, fx=fx)
    return respond(
        {
            "segment_id": segment_id,
            "name": found.definition.name,
            "as_of": found.as_of,
            "members": len(found.ids),
            "start": start,
            "end": end,
            **to.summary(),
            **rule_segments.member_kpis(whole, to=to),
        }
    )


@router.get("/kpis/segments/{segment_id}/series", response_model=SegmentSeries)
async def segment_series(
    segment_id: SegmentPath,
    store: Store,
    fx: Fx,
    _: Reader,
    start: Required,
    end: RequiredTo,
    bucket: Annotated[Literal["day", "week"], Query(description="UTC days or ISO weeks.")] = "day",
    as_of: AsOf = None,
    currency: ReportingCurrency = None,
) -> JSONResponse:
    """The members' revenue, gross profit, orders, buyers, average check, new customers and
    leads per day or week of [from, to); members as of `as_of` (default: the period's last
    day) for every bucket."""
    period = period_of(start, end)
    reporting_in(currency, fx)
    days = series_buckets(start=start, end=end, bucket=bucket)
    if len(days) > MAX_SERIES_BUCKETS:
        raise DomainError(
            f"at most {MAX_SERIES_BUCKETS} {bucket} buckets per series",
            field="to",
            status_code=422,
            location="query",
        )
    found = await _members(store, fx, segment_id=segment_id, as_of=_as_of(as_of, end))
    measured = await store.run(
        segment_members.member_measures, members=found.ids, bucket=bucket, **period
    )
    to = rule_segments.conversion_of(measured.values(), currency=currency or fx.base, fx=fx)
    keys = (
        "revenue",
        "gross_profit",
        "orders",
        "customers",
        "average_check",
        "new_customers",
        "leads",
    )
    points = []
    for day in days:
        kpis = rule_segments.member_kpis(measured.get(day, segment_members.MemberMeasures()), to=to)
        points.append({"start": day, **{k: kpis[k] for k in keys}})
    return respond(
        {
            "segment_id": segment_id,
            "as_of": found.as_of,
            "members": len(found.ids),
            "bucket": bucket,
            "start": start,
            "end": end,
            **to.summary(),
            "points": points,
        }
    )
