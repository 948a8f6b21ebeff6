"""Response models of the promotion uplift route (``uplift_api``), for the OpenAPI: what each
field means, in which currency its amounts are, and a worked example.

The route answers with exact decimals serialised as JSON strings (``api.respond``); these
models document that shape, they do not produce it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

_IN_CURRENCY = (
    " In the campaign's `currency` (sales in others converted with MRM_FX_RATES); null when a"
    " part of it is in a currency of `missing_rates`."
)


class UpliftWindow(BaseModel):
    """One window of a promotion uplift: [start, end), the weeks of it elapsed by `as_of`, the
    sales of the promoted product/partner pairs (or of the control's) in it."""

    start: dt.datetime
    end: dt.datetime
    weeks: Decimal = Field(description="Weeks of the window elapsed by `as_of`, 6 places.")
    units: int = Field(description="Sales (orders: a sale carries no quantity, so one unit).")
    revenue: Decimal | None = Field(description="Σ sales, to the cent." + _IN_CURRENCY)
    discounts: Decimal | None = Field(description="Σ discounts, to the cent." + _IN_CURRENCY)


class UpliftBaseline(UpliftWindow):
    """The `weeks_before` weeks before the start and their average week."""

    units_per_week: Decimal | None = Field(description="units / weeks, 2 places.")
    revenue_per_week: Decimal | None = Field(description="revenue / weeks, to the cent.")


class UpliftActual(UpliftWindow):
    """The campaign's dates, or the `weeks_after` weeks after its end, against the baseline
    used (`baseline_used`)."""

    expected_units: Decimal | None = Field(description="The baseline's units over the window.")
    expected_revenue: Decimal | None = Field(description="The baseline's revenue over the window.")


class UpliftChange(BaseModel):
    """Actual − expected (the baseline over the window)."""

    units: Decimal | None = Field(description="2 places.")
    revenue: Decimal | None = Field(description="To the cent." + _IN_CURRENCY)
    gross_profit: Decimal | None = Field(
        description="revenue × the campaign's gross margin, to the cent."
    )


class UpliftExpected(BaseModel):
    """A baseline's expected sales over a window's elapsed weeks."""

    units: Decimal | None = Field(description="2 places.")
    revenue: Decimal | None = Field(description="To the cent." + _IN_CURRENCY)


class UpliftEstimate(BaseModel):
    """Everything one baseline makes of the actual sales."""

    expected_during: UpliftExpected
    expected_after: UpliftExpected
    incremental: UpliftChange = Field(description="During: actual − expected.")
    dip: UpliftChange = Field(description="After: actual − expected.")
    net: UpliftChange = Field(description="incremental + dip.")
    promotion_roi: Decimal | None = Field(
        description="(incremental gross profit − cost − discounts) / (cost + discounts), 6 "
        "places; null when undefined."
    )
    net_promotion_roi: Decimal | None = Field(
        description="(net gross profit − cost − discounts) / (cost + discounts), 6 places; "
        "null when undefined."
    )


class UpliftBaselines(BaseModel):
    """Both baselines side by side."""

    before: UpliftEstimate = Field(description="The average week before the start.")
    control: UpliftEstimate | None = Field(
        description="The before-baseline moved as the control moved: the promoted pairs' sales "
        "before × the control's sales in the window / the control's sales before. Null when no "
        "control was asked for or it cannot serve (`control.reason`)."
    )


class UpliftRatio(BaseModel):
    """The control's sales per week in a window / its sales per week before."""

    units: Decimal | None = Field(description="6 places; null when undefined.")
    revenue: Decimal | None = Field(description="6 places; null when undefined.")


class UpliftControl(BaseModel):
    """The control group: sales of the promoted products by partners that none of the
    campaign's sales name (sales without a partner are left out)."""

    partners: int = Field(description="Control partners with sales in the windows.")
    pairs: int = Field(description="Their product/partner pairs with sales in the windows.")
    used: bool = Field(description="Whether the control baseline is the one used.")
    reason: str | None = Field(description="Why the control cannot serve (null when used).")
    before: UpliftWindow
    during: UpliftWindow
    after: UpliftWindow
    during_change: UpliftRatio = Field(description="Per week during / per week before.")
    after_change: UpliftRatio = Field(description="Per week after / per week before.")


def _window(start: str, end: str, units: int, revenue: str, discounts: str) -> dict[str, Any]:
    return {
        "start": f"2027-{start}T00:00:00Z",
        "end": f"2027-{end}T00:00:00Z",
        "weeks": "4.000000" if start == "02-01" else "2.000000",
        "units": units,
        "revenue": revenue,
        "discounts": discounts,
    }


def _change(units: str, revenue: str, gross_profit: str) -> dict[str, str]:
    return {"units": units, "revenue": revenue, "gross_profit": gross_profit}


_BEFORE_ONLY = {
    "expected_during": {"units": "2.00", "revenue": "200.00"},
    "expected_after": {"units": "2.00", "revenue": "200.00"},
    "incremental": _change("3.00", "604.00", "302.00"),
    "dip": _change("-1.00", "-150.00", "-75.00"),
    "net": _change("2.00", "454.00", "227.00"),
    "promotion_roi": "-0.336847",
    "net_promotion_roi": "-0.501537",
}
_WITH_CONTROL = {
    "expected_during": {"units": "2.50", "revenue": "250.00"},
    "expected_after": {"units": "1.50", "revenue": "120.00"},
    "incremental": _change("2.50", "554.00", "277.00"),
    "dip": _change("-0.50", "-70.00", "-35.00"),
    "net": _change("2.00", "484.00", "242.00"),
    "promotion_roi": "-0.391744",
    "net_promotion_roi": "-0.468599",
}
_UPLIFT_EXAMPLE: dict[str, Any] = {
    "campaign_id": "spring-promo",
    "name": "Spring promo",
    "currency": "USD",
    "start_date": "2027-03-01",
    "end_date": "2027-03-14",
    "gross_margin": "0.500000",
    "as_of": "2027-06-01T00:00:00Z",
    "weeks_before": 4,
    "weeks_after": 2,
    "pairs": 2,
    "missing_rates": [],
    "baseline": {
        **_window("02-01", "03-01", 4, "400.00", "8.00"),
        "units_per_week": "1.00",
        "revenue_per_week": "100.00",
    },
    "during": {
        **_window("03-01", "03-15", 5, "804.00", "55.40"),
        "expected_units": "2.50",
        "expected_revenue": "250.00",
    },
    "after": {
        **_window("03-15", "03-29", 1, "50.00", "0.00"),
        "expected_units": "1.50",
        "expected_revenue": "120.00",
    },
    "incremental": _WITH_CONTROL["incremental"],
    "dip": _WITH_CONTROL["dip"],
    "net": _WITH_CONTROL["net"],
    "discounts": "55.40",
    "cost": "400.00",
    "promotion_roi": "-0.391744",
    "net_promotion_roi": "-0.468599",
    "baseline_used": "control",
    "baselines": {"before": _BEFORE_ONLY, "control": _WITH_CONTROL},
    "control": {
        "partners": 2,
        "pairs": 2,
        "used": True,
        "reason": None,
        "before": _window("02-01", "03-01", 8, "800.00", "0.00"),
        "during": _window("03-01", "03-15", 5, "500.00", "0.00"),
        "after": _window("03-15", "03-29", 3, "240.00", "0.00"),
        "during_change": {"units": "1.250000", "revenue": "1.250000"},
        "after_change": {"units": "0.750000", "revenue": "0.600000"},
    },
}


class PromotionUplift(BaseModel):
    """A campaign's promotion uplift by before / during / after, optionally against a control
    group (README "Promotion uplift"). The headline figures (`during`/`after` expected,
    `incremental`, `dip`, `net`, both ROIs) are those of `baseline_used`; `baselines` holds
    both."""

    model_config = ConfigDict(json_schema_extra={"examples": [_UPLIFT_EXAMPLE]})

    campaign_id: str
    name: str
    currency: str = Field(description="The campaign's currency, of every amount.")
    start_date: dt.date
    end_date: dt.date = Field(description="The campaign's last day (inclusive).")
    gross_margin: Decimal = Field(description="The campaign's gross margin.")
    as_of: dt.datetime = Field(description="Sales and spend after it are ignored.")
    weeks_before: int
    weeks_after: int
    pairs: int = Field(
        description="The product/partner pairs of the campaign's own sales: what it promoted. "
        "Every sale of them counts, whichever campaign it is attributed to, or none."
    )
    missing_rates: list[str] = Field(
        description="Currencies of those sales, the control's or the spend with no rate to "
        "`currency`."
    )
    baseline: UpliftBaseline
    during: UpliftActual
    after: UpliftActual
    incremental: UpliftChange = Field(description="During: actual − expected.")
    dip: UpliftChange = Field(
        description="After: actual − expected; negative when sales fell below the baseline."
    )
    net: UpliftChange = Field(
        description="incremental + dip: what the promotion added once the weeks after it count."
    )
    discounts: Decimal | None = Field(
        description="Σ discounts on those pairs during the campaign, to the cent." + _IN_CURRENCY
    )
    cost: Decimal | None = Field(
        description="The campaign's spend up to `as_of`, to the cent." + _IN_CURRENCY
    )
    promotion_roi: Decimal | None = Field(
        description="(incremental gross profit − cost − discounts) / (cost + discounts), "
        "6 places; null when undefined."
    )
    net_promotion_roi: Decimal | None = Field(
        description="(net gross profit − cost − discounts) / (cost + discounts), 6 places; "
        "null when undefined."
    )
    baseline_used: Literal["before", "control"] = Field(
        description="`control` when a control was asked for (`control=partners`) and can serve, "
        "else `before`."
    )
    baselines: UpliftBaselines
    control: UpliftControl | None = Field(
        description="The control group (null unless `control=partners`)."
    )
