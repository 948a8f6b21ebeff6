"""Measurement's segment routes: RFM segments of the customers who bought in a window — sizes
and score distributions, and the members with their scores and profiles (JSON, or CSV for the
CRM). Scoring is ``rfm``, the answer's shape ``segments``."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from services.measurement import rfm, segments
from services.measurement.api import Fx, Reader, ReportingCurrency, Store, reporting_in, respond
from services.measurement.schemas import Currencies
from services.measurement.warehouse import customers
from shared.events.envelope import Date

router = APIRouter(prefix="/api/v1", tags=["segments"])

AsOf = Annotated[
    Date | None,
    Query(description="The day (UTC) recency is counted to; its sales count (default: today)."),
]
Days = Annotated[
    int,
    Query(
        ge=1,
        le=segments.MAX_DAYS,
        description="How many days of sales, ending with `as_of`, the segmentation reads.",
    ),
]
SegmentName = Literal[
    "champions", "loyal", "new", "promising", "at_risk", "hibernating", "need_attention"
]
_RULES = "; ".join(
    f"{r.segment}: R {r.r[0]}–{r.r[1]}, F {r.f[0]}–{r.f[1]}, M {r.m[0]}–{r.m[1]}"
    for r in rfm.SEGMENT_RULES
)


class _Window(Currencies):
    as_of: dt.date = Field(description="Recency is counted in days to this UTC day.")
    days: int = Field(description="The window's length in days, ending with `as_of`.")
    window_start: dt.date = Field(description="The window's first day.")
    customers: int = Field(description="Customers scored (a sale in the window, all converted).")
    unconverted_customers: int = Field(
        description="Customers left unscored: a sale in a currency of `missing_rates`."
    )


_EXAMPLE_HEAD: dict[str, Any] = {
    "as_of": "2027-12-31",
    "days": 365,
    "window_start": "2027-01-01",
    "currency": "USD",
    "fx_rates": {"EUR": "1.08"},
    "missing_rates": [],
    "customers": 10,
    "unconverted_customers": 0,
}


class RfmOverview(_Window):
    """Segment sizes and score distributions of a window's customers."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_EXAMPLE_HEAD,
                    "segments": {
                        "champions": 2,
                        "loyal": 1,
                        "new": 1,
                        "promising": 1,
                        "at_risk": 2,
                        "hibernating": 2,
                        "need_attention": 1,
                    },
                    "r_scores": {"1": 2, "2": 2, "3": 2, "4": 2, "5": 2},
                    "f_scores": {"1": 2, "2": 2, "3": 2, "4": 2, "5": 2},
                    "m_scores": {"1": 2, "2": 2, "3": 2, "4": 2, "5": 2},
                }
            ]
        }
    )

    segments: dict[str, int] = Field(description=f"Segment → customers in it. {_RULES}.")
    r_scores: dict[str, int] = Field(description="Recency score 1–5 → customers with it.")
    f_scores: dict[str, int] = Field(description="Frequency score 1–5 → customers with it.")
    m_scores: dict[str, int] = Field(description="Monetary score 1–5 → customers with it.")


class CustomerProfileOut(BaseModel):
    """The customer's latest profile (``customer.profile_updated``, highest version)."""

    version: int
    industry: str | None
    size: str | None
    region: str | None
    age_band: str | None
    attributes: dict[str, str]


class RfmMember(BaseModel):
    """One customer's RFM values, scores, segment and profile."""

    customer_id: str
    segment: str
    recency_days: int = Field(description="Days from the last sale's UTC day to `as_of`.")
    frequency: int = Field(description="Distinct orders in the window.")
    monetary: Decimal = Field(description="Revenue in the window, in `currency`, to the cent.")
    r_score: int
    f_score: int
    m_score: int
    profile: CustomerProfileOut | None = Field(description="null: no profile was published.")


class RfmMembers(_Window):
    """The customers of a segment (or all), by customer_id."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_EXAMPLE_HEAD,
                    "segment": "champions",
                    "members": [
                        {
                            "customer_id": "cust-1001",
                            "segment": "champions",
                            "recency_days": 3,
                            "frequency": 7,
                            "monetary": "4200.00",
                            "r_score": 5,
                            "f_score": 5,
                            "m_score": 5,
                            "profile": {
                                "version": 4,
                                "industry": "retail",
                                "size": "large",
                                "region": "EMEA",
                                "age_band": None,
                                "attributes": {"tier": "gold"},
                            },
                        }
                    ],
                }
            ]
        }
    )

    segment: str | None = Field(description="The segment asked for; null: every customer.")
    members: list[RfmMember]


async def _segmentation(
    store: Store, fx: Fx, *, as_of: dt.date | None, days: int, currency: str | None
) -> segments.Segmentation:
    reporting_in(currency, fx)  # 422 naming `currency` without a rate
    window = segments.Window(as_of=as_of or dt.datetime.now(dt.UTC).date(), days=days)
    rows = await store.run(customers.customer_sales, start=window.start, end=window.end)
    return segments.segment(rows, window=window, currency=currency or fx.base, fx=fx)


@router.get("/segments/rfm", response_model=RfmOverview)
async def rfm_overview(
    store: Store,
    fx: Fx,
    _: Reader,
    as_of: AsOf = None,
    days: Days = 365,
    currency: ReportingCurrency = None,
) -> JSONResponse:
    """RFM segment sizes and the distribution of each score, over the customers who bought in
    the `days` days ending with `as_of` (quintile scores, 5 = best; README "Segments")."""
    found = await _segmentation(store, fx, as_of=as_of, days=days, currency=currency)
    return respond(segments.overview(found))


@router.get(
    "/segments/rfm/customers",
    response_model=RfmMembers,
    responses={200: {"content": {"text/csv": {}}}},
)
async def rfm_customers(
    store: Store,
    fx: Fx,
    _: Reader,
    segment: Annotated[SegmentName | None, Query(description="Default: every segment.")] = None,
    as_of: AsOf = None,
    days: Days = 365,
    currency: ReportingCurrency = None,
    output: Annotated[
        Literal["json", "csv"],
        Query(alias="format", description="json, or csv: a header row and a line per customer."),
    ] = "json",
) -> Response:
    """The customers of an RFM segment with their recency, frequency, monetary value, scores and
    latest profile."""
    found = await _segmentation(store, fx, as_of=as_of, days=days, currency=currency)
    window = found.window
    profiles = await store.run(customers.profiles_of_buyers, start=window.start, end=window.end)
    rows = segments.members(found, segment=segment, profiles={p.customer_id: p for p in profiles})
    if output == "csv":
        name = f"rfm-{segment or 'all'}-{window.as_of.isoformat()}.csv"
        return Response(
            segments.render_csv(rows, currency=found.conversion.currency),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return respond({**found.header(), "segment": segment, "members": rows})
