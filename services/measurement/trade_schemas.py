"""Response models of the trade-marketing series (``GET /api/v1/kpis/series`` with scope brand,
partner, product or region), for the OpenAPI, and their examples. Like ``schemas``, they
document the answer's shape; ``api.respond`` writes it (decimals as exact strings)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from services.measurement.schemas import Currencies

_AMOUNT = (
    " To the cent, in the answer's `currency` (under `by_currency`, in that currency); null when"
    " a part of it is in a currency without rate (`missing_rates`)."
)
_BRAND_ONLY = (
    " Scope brand only (`spend_attributed`): spend is attributable by brand or channel, never by"
    " partner, product or region, whose series have null here."
)


class TradeFigures(BaseModel):
    """A bucket's sales figures, the same by every scope."""

    units: int = Field(
        description="Sales in the bucket (a sale carries no quantity: one unit per sale)."
    )
    orders: int = Field(description="Sales in the bucket (the average check's denominator).")
    revenue: Decimal | None = Field(description="Σ sale amounts." + _AMOUNT)
    gross_profit: Decimal | None = Field(
        description="Σ sale × the gross margin of its campaign (1.0 when unattributed)." + _AMOUNT
    )
    discounts: Decimal | None = Field(description="Σ discount amounts." + _AMOUNT)
    average_check: Decimal | None = Field(description="revenue / orders." + _AMOUNT)
    spend: Decimal | None = Field(
        description="Σ spend of the brand's campaigns (every channel)." + _AMOUNT + _BRAND_ONLY
    )
    romi: Decimal | None = Field(
        description="(gross profit of the brand's sales − its campaigns' spend) / spend, to 6 "
        "places; null when the spend is 0." + _BRAND_ONLY
    )

    leads: int | None = Field(
        description="Distinct leads of the brand's campaigns reaching lead or later in the "
        "bucket; null under `by_currency` (leads are the brand's, not a currency's)." + _BRAND_ONLY
    )
    cpl: Decimal | None = Field(
        description="spend / leads; null under `by_currency`." + _AMOUNT + _BRAND_ONLY
    )


class TradePoint(TradeFigures):
    """One day or ISO week."""

    start: dt.date = Field(description="The bucket's first day (UTC).")
    by_currency: dict[str, TradeFigures] = Field(
        description="Currency → the bucket's sales (and a brand's spend) in that currency, "
        "unconverted; only the currencies the bucket holds anything in."
    )


class TradeSeries(Currencies):
    """The sales of one brand, trade partner, product or region per day or ISO week."""

    scope: str = Field(description="brand, partner, product or region.")
    id: str = Field(description="The brand, partner id, product id or region, as sales name it.")
    bucket: str = Field(description="day or week.")
    sale_kind: str | None = Field(description="sell_in or sell_out; null: every sale.")
    start: dt.datetime
    end: dt.datetime
    spend_attributed: bool = Field(
        description="True for a brand (its campaigns' spend, leads, CPL, ROMI); false for a "
        "partner, product or region: those fields are null."
    )
    campaigns: list[str] = Field(
        description="The brand's campaigns (brand set on the campaign), whose spend and leads "
        "count; empty for the other scopes."
    )
    points: list[TradePoint]


def _point(day: str, units: int, revenue: str, spend: str | None, leads: int | None) -> dict:
    gross = str((Decimal(revenue) * Decimal("0.5")).quantize(Decimal("0.01")))
    figures: dict[str, Any] = {
        "units": units,
        "orders": units,
        "revenue": revenue,
        "gross_profit": gross,
        "discounts": "0.00",
        "average_check": (
            str((Decimal(revenue) / units).quantize(Decimal("0.01"))) if units else None
        ),
        "spend": spend,
        "romi": (
            str(((Decimal(gross) - Decimal(spend)) / Decimal(spend)).quantize(Decimal("1e-6")))
            if spend
            else None
        ),
    }
    cpl = str((Decimal(spend) / leads).quantize(Decimal("0.01"))) if spend and leads else None
    own = {**figures, "leads": None, "cpl": None}
    return {
        "start": day,
        **figures,
        "leads": leads,
        "cpl": cpl,
        "by_currency": {"USD": own} if units or spend else {},
    }


def _example(scope: str, value: str, points: list[dict[str, Any]]) -> dict[str, Any]:
    brand = scope == "brand"
    return {
        "summary": f"scope={scope}",
        "value": {
            "currency": "USD",
            "fx_rates": {},
            "missing_rates": [],
            "scope": scope,
            "id": value,
            "bucket": "week",
            "sale_kind": None if brand else "sell_in",
            "start": "2027-03-01T00:00:00Z",
            "end": "2027-03-15T00:00:00Z",
            "spend_attributed": brand,
            "campaigns": ["spring-acme-search"] if brand else [],
            "points": points,
        },
    }


SERIES_EXAMPLES: dict[str, Any] = {
    "brand": _example(
        "brand",
        "Acme",
        [
            _point("2027-03-01", 40, "8000.00", "2000.00", 50),
            _point("2027-03-08", 55, "11000.00", "2500.00", 64),
        ],
    ),
    "partner": _example(
        "partner",
        "partnernet",
        [
            _point("2027-03-01", 12, "6000.00", None, None),
            _point("2027-03-08", 0, "0.00", None, None),
        ],
    ),
}
"""OpenAPI examples of ``TradeSeries``: a brand with its campaigns' spend and leads, and a
partner's sell-in, whose spend cannot be told."""
