"""Response models of measurement's scope endpoints (channel, company, series, comparison,
pipeline forecast, sales by dimension; promotion uplift's are in ``uplift_models``), for the
OpenAPI: what each field means, in which currency its amounts are.

The routes answer with exact decimals serialised as JSON strings (``api.respond``); these
models document that shape, they do not produce it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_AMOUNT = (
    " In the answer's `currency` (under `by_currency`, in that currency); null when a part of it"
    " is in a currency without rate (`missing_rates`)."
)
_RATIO = (
    " A ratio to 6 places; null when undefined (a division by zero) or computed from an amount"
    " that is null."
)
_BY_CURRENCY = (
    "Currency → the KPIs of the scope's share in it, in that currency: its amounts, the leads, "
    "clicks … of its campaigns (rows of no known campaign count in the default currency), its "
    "campaigns' budgets and CKPI. Lists every currency the scope holds anything in."
)


def money_field(what: str) -> Any:
    """A money field of an answer: an exact decimal string, to the cent."""
    return Field(description=f"{what}, to the cent.{_AMOUNT}")


def ratio_field(what: str) -> Any:
    """A ratio field of an answer (null where undefined)."""
    return Field(description=f"{what}.{_RATIO}")


class Currencies(BaseModel):
    """The currency fields of an answer spanning campaigns of several currencies."""

    currency: str = Field(
        description="The reporting currency of every top-level amount and KPI computed from "
        "amounts (spend, revenue, CPL, ROMI …): each currency's sums are converted with "
        "`fx_rates`, then added, and the ratios computed from the converted sums and the "
        "scope's own counts. An amount with a part in a currency of `missing_rates` is null, "
        "and so is every KPI computed from it: nothing is added across currencies."
    )
    fx_rates: dict[str, Decimal] = Field(
        description="The rates used (from MRM_FX_RATES): what one unit of each converted "
        "currency is worth in `currency`."
    )
    missing_rates: list[str] = Field(
        description="The currencies holding amounts in the scope with no rate to the reporting "
        "currency, sorted; empty when everything converts. `by_currency` answers in each."
    )


class KpiSet(BaseModel):
    """Every SPEC §4 KPI of a scope and period (counts are integers)."""

    spend: Decimal | None = money_field("Σ spend")
    impressions: int = Field(description="Σ impressions of the ad metrics.")
    clicks: int = Field(description="Σ clicks of the ad metrics.")
    ctr: Decimal | None = ratio_field("clicks / impressions")
    cpc: Decimal | None = money_field("Cost per click: spend / clicks")
    leads: int = Field(description="Distinct leads whose highest stage reached is lead or later.")
    cpl: Decimal | None = money_field("Cost per lead: spend / leads")
    funnel: dict[str, int] = Field(description="Distinct leads reaching each stage or later.")
    lost: int = Field(description="Distinct leads lost in the period.")
    conversions: dict[str, Decimal | None] = Field(
        description="Stage conversions X→Y: leads reaching Y or later / reaching X or later."
    )
    new_customers: int = Field(description="Customers whose first sale ever is in the period.")
    cac: Decimal | None = money_field("Customer acquisition cost: spend / new customers")
    revenue: Decimal | None = money_field("Σ sales")
    gross_profit: Decimal | None = money_field("Σ sale × its campaign's gross margin")
    romi: Decimal | None = ratio_field("(gross profit − spend) / spend")
    roi: Decimal | None = ratio_field("(gross profit − spend − discounts) / (spend + discounts)")
    discounts: Decimal | None = money_field("Σ discounts")
    orders: int = Field(description="Number of sales.")
    average_check: Decimal | None = money_field("revenue / orders")
    customers: int = Field(description="Distinct customers with a sale in the period.")
    repeat_purchase_rate: Decimal | None = Field(
        description="Customers with ≥ 2 orders / customers with ≥ 1." + _RATIO
    )
    ltv_customers: int = Field(description="Customers whose first sale ever is in the scope.")
    ltv: Decimal | None = money_field("Their lifetime gross profit per customer")
    ltv_cac: Decimal | None = ratio_field("LTV / CAC")
    marketing_pct_of_sales: Decimal | None = ratio_field("spend / revenue")
    budget: Decimal | None = money_field("Budget of the scope's campaigns overlapping the period")
    budget_utilisation: Decimal | None = ratio_field("spend / budget")
    forecast_at_completion: Decimal | None = money_field("Spend at the campaigns' end at this rate")
    ckpi: Decimal | None = Field(
        description="Weighted score of the campaigns' KPI targets (100 = on target, each "
        "campaign judged on its own KPIs, in its own currency); null without targets."
    )


class ChannelKpis(Currencies, KpiSet):
    """A channel's KPIs in the reporting currency, and per currency."""

    channel: str
    plan_id: str | None = Field(description="The plan the channel is looked at within, if any.")
    start: dt.datetime | None
    end: dt.datetime | None
    campaigns: list[str] = Field(description="The channel's campaigns overlapping the period.")
    by_currency: dict[str, KpiSet] = Field(description=_BY_CURRENCY)


class CompanyKpis(Currencies, KpiSet):
    """The whole company's KPIs in the reporting currency, and per currency."""

    start: dt.datetime | None
    end: dt.datetime | None
    campaigns: int = Field(description="Number of campaigns overlapping the period.")
    by_currency: dict[str, KpiSet] = Field(description=_BY_CURRENCY)


class SeriesValues(BaseModel):
    """The KPIs of one bucket."""

    spend: Decimal | None = money_field("Σ spend")
    leads: int = Field(description="Distinct leads reaching lead or later in the bucket.")
    new_customers: int = Field(description="Customers whose first sale ever is in the bucket.")
    revenue: Decimal | None = money_field("Σ sales")
    gross_profit: Decimal | None = money_field("Σ gross profit")
    cpl: Decimal | None = money_field("spend / leads")
    romi: Decimal | None = ratio_field("(gross profit − spend) / spend")


class SeriesPoint(SeriesValues):
    """One day or ISO week."""

    start: dt.date = Field(description="The bucket's first day (UTC).")
    by_currency: dict[str, SeriesValues] = Field(
        description="Currency → the bucket's KPIs of the scope's share in it, in that currency."
    )


class KpiSeries(Currencies):
    """KPIs per day or week; one reporting currency and one set of rates for every point."""

    scope: str
    id: str | None
    bucket: str
    start: dt.datetime
    end: dt.datetime
    points: list[SeriesPoint]


class ComparedKpis(BaseModel):
    """Whole-history KPIs a comparison shows."""

    spend: Decimal | None = money_field("Σ spend")
    leads: int = Field(description="Distinct leads reaching lead or later.")
    cpl: Decimal | None = money_field("spend / leads")
    new_customers: int = Field(description="Customers whose first sale ever is theirs.")
    cac: Decimal | None = money_field("spend / new customers")
    revenue: Decimal | None = money_field("Σ sales")
    romi: Decimal | None = ratio_field("(gross profit − spend) / spend")
    budget: Decimal | None = money_field("Budget")
    budget_utilisation: Decimal | None = ratio_field("spend / budget")
    lead_to_customer: Decimal | None = ratio_field("Leads that became customers / leads")


class ComparedCampaign(ComparedKpis):
    """One campaign, its amounts in its own `currency`."""

    campaign_id: str
    plan_id: str
    name: str
    channel: str
    brand: str | None
    status: str
    currency: str = Field(description="The campaign's currency, that of its amounts.")
    start_date: dt.date
    end_date: dt.date
    matches: list[str] = Field(description="What a peer shares with the campaign: channel, brand.")


class PooledPeers(Currencies, ComparedKpis):
    """The peers taken as one scope, in the reporting currency (default: the campaign's)."""

    by_currency: dict[str, ComparedKpis] = Field(
        description="Currency → the pooled KPIs of the peers' share in it, in that currency."
    )


class Comparison(BaseModel):
    """A campaign next to its past peers."""

    campaign: ComparedCampaign
    peers: list[ComparedCampaign]
    peers_pooled: PooledPeers | None = Field(description="Null without peers.")


class Expected(BaseModel):
    """Expected customers and revenue."""

    customers: Decimal = Field(description="Expected customers (a sum of probabilities), 2 places.")
    revenue: Decimal | None = Field(
        description="Expected revenue in the answer's `currency`, to the cent: each lead's "
        "probability × its expected_value, else × the measured average check; null when a lead "
        "that may convert has neither (or its value is in a currency of `missing_rates`)."
    )


class ForecastWeek(Expected):
    """One week ahead: [week_start, week_end)."""

    week: int = Field(description="1 = the 7 days from `as_of`.")
    week_start: dt.datetime
    week_end: dt.datetime


class StageRateOut(BaseModel):
    """The measured rates the forecast used for one open stage."""

    stage: str
    open_leads: int = Field(description="Open leads whose highest stage is this one.")
    reached: int = Field(description="Leads of the history reaching this stage or later.")
    to_next: Decimal | None = Field(description="Measured conversion to the next stage.")
    to_customer: Decimal | None = Field(
        description="Measured conversion to customer: leads reaching customer / reaching this "
        "stage or later (null without such leads)."
    )
    median_days_to_customer: Decimal | None = Field(
        description="Median days from first reaching this stage to first reaching customer."
    )
    timed_customers: int = Field(
        description="Converted leads with both events, whose durations time the forecast "
        "(at most 1000, a repeatable sample beyond)."
    )


_PIPELINE_EXAMPLE: dict[str, Any] = {
    "scope": "campaign",
    "id": "spring-launch",
    "as_of": "2027-03-01T09:00:00Z",
    "lookback_days": 365,
    "currency": "EUR",
    "missing_rates": [],
    "average_check": "100.00",
    "open_leads": 10,
    "weeks": [
        {
            "week": 1,
            "week_start": "2027-03-01T09:00:00Z",
            "week_end": "2027-03-08T09:00:00Z",
            "customers": "1.13",
            "revenue": "113.33",
        }
    ],
    "totals": {"customers": "4.10", "revenue": "410.00"},
    "later": {"customers": "0.50", "revenue": "50.00"},
    "rates": [
        {
            "stage": "mql",
            "open_leads": 3,
            "reached": 10,
            "to_next": "0.800000",
            "to_customer": "0.400000",
            "median_days_to_customer": "17.50",
            "timed_customers": 4,
        }
    ],
}


class PipelineForecast(BaseModel):
    """Expected customers and revenue per week ahead from a scope's open leads (README
    "Pipeline forecast")."""

    model_config = ConfigDict(json_schema_extra={"examples": [_PIPELINE_EXAMPLE]})

    scope: str = Field(description="campaign, plan or channel.")
    id: str = Field(description="The campaign's or plan's id, or the channel.")
    as_of: dt.datetime = Field(description="The forecast's start; events after it are ignored.")
    lookback_days: int | None = Field(
        description="Days of history the rates are measured over (null: all history)."
    )
    currency: str = Field(
        description="Currency of the amounts: the campaign's or plan's; a channel's: "
        "MRM_CURRENCY (other currencies converted with MRM_FX_RATES)."
    )
    missing_rates: list[str] = Field(
        description="Currencies of values or sales with no rate to `currency`."
    )
    average_check: Decimal | None = Field(
        description="Revenue / orders of the scope's sales over the lookback, to the cent; "
        "the value of a lead without expected_value."
    )
    open_leads: int = Field(description="Leads below customer and never lost.")
    weeks: list[ForecastWeek]
    totals: Expected = Field(description="The sum over `weeks`.")
    later: Expected = Field(
        description="Expected after the last week, or from stages with no measured timing."
    )
    rates: list[StageRateOut] = Field(description="One per stage visitor … opportunity.")


_MARKETING = (
    " Only by brand and by channel (`spend_attributed`); null by partner, product, region and"
    " outlet, whose spend cannot be told."
)


class SalesFigures(BaseModel):
    """The sales figures of one value of a dimension (or of all of them), the same fields by
    every dimension, so brands and channels read side by side."""

    orders: int = Field(description="Number of sales.")
    revenue: Decimal | None = money_field("Σ sales")
    discounts: Decimal | None = money_field("Σ discounts")
    average_check: Decimal | None = money_field("revenue / orders")
    gross_profit: Decimal | None = money_field(
        "Σ sale × the gross margin of its campaign (1.0 when unattributed)"
    )
    revenue_share: Decimal | None = ratio_field("revenue / the revenue of all values")
    spend: Decimal | None = Field(
        description="Σ spend of the brand's campaigns, or in the channel, to the cent."
        + _AMOUNT
        + _MARKETING
    )
    romi: Decimal | None = Field(
        description="(gross profit − spend) / spend." + _RATIO + _MARKETING
    )
    roi: Decimal | None = Field(
        description="(gross profit − spend − discounts) / (spend + discounts)."
        + _RATIO
        + _MARKETING
    )
    marketing_pct_of_sales: Decimal | None = Field(
        description="spend / revenue." + _RATIO + _MARKETING
    )


class SalesRow(SalesFigures):
    """One value of the dimension."""

    value: str | None = Field(
        description="The brand, partner id, product id, region, outlet or channel; null for "
        "the sales without one (listed last). A sale without a brand or channel counts under "
        "its campaign's."
    )
    by_currency: dict[str, SalesFigures] = Field(
        description="Currency → the value's figures in it, unconverted; `revenue_share` of "
        "that currency's revenue."
    )


class SalesTotal(SalesFigures):
    """Every value together."""

    by_currency: dict[str, SalesFigures] = Field(
        description="Currency → the figures of all values in it, unconverted."
    )


class SalesBreakdown(Currencies):
    """The sales of a period by one dimension, one row per value of it; one response shape for
    every dimension."""

    by: str = Field(description="brand, partner, product, region, outlet or channel.")
    sale_kind: str | None = Field(description="sell_in or sell_out; null: every sale.")
    start: dt.datetime | None
    end: dt.datetime | None
    spend_attributed: bool = Field(
        description="Whether spend is attributable to the dimension (brand: its campaigns' "
        "spend; channel: the spend in it); false: spend, ROMI, ROI and marketing % are null."
    )
    total: SalesTotal
    rows: list[SalesRow] = Field(description="Ordered by value; the sales without one last.")


def _example_figures(
    orders: int, revenue: str, spend: str | None, romi: str | None, share: str
) -> dict[str, Any]:
    return {
        "orders": orders,
        "revenue": revenue,
        "discounts": "0.00",
        "average_check": str((Decimal(revenue) / orders).quantize(Decimal("0.01"))),
        "gross_profit": revenue,
        "revenue_share": share,
        "spend": spend,
        "romi": romi,
        "roi": romi,
        "marketing_pct_of_sales": (
            str((Decimal(spend) / Decimal(revenue)).quantize(Decimal("1e-6"))) if spend else None
        ),
    }


_ExampleRow = tuple[str | None, int, str, str | None, str | None, str]


def _example(by: str, values: list[_ExampleRow]) -> dict[str, Any]:
    rows = []
    for value, orders, revenue, spend, romi, share in values:
        figures = _example_figures(orders, revenue, spend, romi, share)
        rows.append({"value": value, **figures, "by_currency": {"USD": figures}})
    orders = sum(int(r["orders"]) for r in rows)
    revenue = str(sum(Decimal(r["revenue"]) for r in rows))
    marketing = by in ("brand", "channel")
    spend = str(sum(Decimal(r["spend"] or 0) for r in rows)) if marketing else None
    romi = (
        str(((Decimal(revenue) - Decimal(spend)) / Decimal(spend)).quantize(Decimal("1e-6")))
        if spend
        else None
    )
    total = _example_figures(orders, revenue, spend, romi, "1.000000")
    return {
        "summary": f"by={by}",
        "value": {
            "currency": "USD",
            "fx_rates": {},
            "missing_rates": [],
            "by": by,
            "sale_kind": "sell_out" if by == "partner" else None,
            "start": "2027-03-01T00:00:00Z",
            "end": "2027-04-01T00:00:00Z",
            "spend_attributed": marketing,
            "total": {**total, "by_currency": {"USD": total}},
            "rows": rows,
        },
    }


SALES_EXAMPLES: dict[str, Any] = {
    "brand": _example(
        "brand",
        [
            ("Acme Pro", 120, "96000.00", "24000.00", "3.000000", "0.750000"),
            ("Bolt", 80, "32000.00", "16000.00", "1.000000", "0.250000"),
        ],
    ),
    "channel": _example(
        "channel",
        [
            ("retail", 150, "100000.00", "30000.00", "2.333333", "0.781250"),
            ("search", 50, "28000.00", "10000.00", "1.800000", "0.218750"),
        ],
    ),
    "partner": _example(
        "partner",
        [
            ("partnernet", 90, "54000.00", None, None, "0.900000"),
            (None, 10, "6000.00", None, None, "0.100000"),
        ],
    ),
}
"""OpenAPI examples of ``SalesBreakdown``: brands and channels side by side (the same sales and
spend, the same fields), and partners, whose spend cannot be told."""
