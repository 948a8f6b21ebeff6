"""Measurement's HTTP routes (SPEC §5): KPIs of a campaign or a plan, the funnel, plan reports."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import TypeAdapter

from services.measurement import (
    campaign_models,
    progress,
    report,
    report_html,
    report_models,
    report_sections,
    report_views,
    schemas,
    trade_api,
    trade_schemas,
    warehouse,
)
from services.measurement.warehouse import Warehouse, budgets, sales_targets
from shared.auth import READERS, Principal, require
from shared.errors import DomainError, NotFound
from shared.events.envelope import Channel, Currency, Identifier, UtcDatetime
from shared.money import FxRates

router = APIRouter(prefix="/api/v1", tags=["measurement"])
_json = TypeAdapter(Any)

Reader = Annotated[Principal, Depends(require(*READERS))]
From = Annotated[
    UtcDatetime | None,
    Query(alias="from", description="Start of the period (inclusive), RFC 3339 with offset."),
]
To = Annotated[
    UtcDatetime | None,
    Query(alias="to", description="End of the period (exclusive), RFC 3339 with offset."),
]


def get_warehouse(request: Request) -> Warehouse:
    """The warehouse built by the app's lifespan."""
    return request.app.state.warehouse  # type: ignore[no-any-return]


Store = Annotated[Warehouse, Depends(get_warehouse)]


def get_fx(request: Request) -> FxRates:
    """The configured FX rates (MRM_CURRENCY, MRM_FX_RATES) built by the app's lifespan."""
    return request.app.state.fx  # type: ignore[no-any-return]


Fx = Annotated[FxRates, Depends(get_fx)]


def get_rule(request: Request) -> progress.AtRiskRule:
    """The sales-target at-risk rule built from the settings by the app's lifespan."""
    return request.app.state.sales_rule  # type: ignore[no-any-return]


Rule = Annotated[progress.AtRiskRule, Depends(get_rule)]
ReportingCurrency = Annotated[
    Currency | None,
    Query(
        description="The currency to report amounts in: MRM_CURRENCY or one MRM_FX_RATES has a "
        "rate for (default: MRM_CURRENCY; a channel within a plan: the plan's; a comparison: "
        "the campaign's; a series of a campaign or plan: its own)."
    ),
]


def reporting_in(currency: str | None, fx: FxRates) -> dict[str, Any]:
    """The reporting arguments of a query; 422 naming ``currency`` when it has no FX rate."""
    if currency is not None and fx.rate(currency) is None:
        raise DomainError(
            f"no FX rate configured for {currency} (MRM_FX_RATES holds rates to {fx.base})",
            field="currency",
            status_code=422,
            location="query",
        )
    return {"fx": fx, "currency": currency}


def period_of(start: dt.datetime | None, end: dt.datetime | None) -> dict[str, dt.datetime | None]:
    """The ``start``/``end`` keywords of a warehouse query for [from, to); 422 if ``to`` is not
    after ``from``."""
    if start is not None and end is not None and end <= start:
        raise DomainError("must be after 'from'", field="to", status_code=422, location="query")
    return {"start": start, "end": end}


def respond(payload: dict[str, Any]) -> JSONResponse:
    """The payload as JSON, decimals as exact strings."""
    # Decimals stay exact: pydantic writes them as strings, never as binary floats.
    return JSONResponse(_json.dump_python(payload, mode="json"))


@router.get("/kpis/campaigns/{campaign_id}")
async def campaign_kpis(
    campaign_id: Identifier, store: Store, _: Reader, start: From = None, end: To = None
) -> JSONResponse:
    """Every KPI of a campaign over [from, to) (whole history when omitted)."""
    kpis = await store.run(
        warehouse.campaign_kpis, campaign_id=campaign_id, **period_of(start, end)
    )
    if kpis.get("name") is None:
        raise NotFound("campaign", campaign_id)
    return respond(kpis)


@router.get("/kpis/plans/{plan_id}")
async def plan_kpis(
    plan_id: Identifier, store: Store, _: Reader, start: From = None, end: To = None
) -> JSONResponse:
    """The KPIs of a plan as one scope, with a per-campaign breakdown."""
    kpis = await store.run(warehouse.plan_kpis, plan_id=plan_id, **period_of(start, end))
    if kpis.get("name") is None and not kpis.get("campaigns"):
        raise NotFound("plan", plan_id)
    return respond(kpis)


@router.get("/funnel")
async def funnel(
    store: Store,
    _: Reader,
    campaign_id: Identifier | None = None,
    start: From = None,
    end: To = None,
) -> JSONResponse:
    """Leads reaching each funnel stage and the stage conversions (all campaigns if omitted)."""
    return respond(
        await store.run(warehouse.funnel, campaign_id=campaign_id, **period_of(start, end))
    )


# --------------------------------------------------------------------------------------------
# plan reports
# --------------------------------------------------------------------------------------------

ReportFormat = Annotated[
    Literal["html", "csv"],
    Query(alias="format", description="html: a self-contained page with charts; csv: a table."),
]
_REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _report_filename(plan_id: str, extension: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", plan_id)[:80] or "plan"
    return f"plan-{safe}-report.{extension}"


@router.get(
    "/reports/plans/{plan_id}",
    response_class=Response,
    responses={200: {"content": {"text/html": {}, "text/csv": {}}}},
)
async def plan_report(
    plan_id: Identifier,
    store: Store,
    fx: Fx,
    rule: Rule,
    _: Reader,
    report_format: ReportFormat = "html",
    start: From = None,
    end: To = None,
) -> Response:
    """A plan's report over [from, to): HTML with charts and tables — its budget tree and the
    progress of the sales targets of the period among them —, or CSV (a row per campaign and a
    plan-total row)."""
    period = period_of(start, end)
    kpis = await store.run(warehouse.plan_kpis, plan_id=plan_id, **period)
    if kpis.get("name") is None and not kpis.get("campaigns"):
        raise NotFound("plan", plan_id)
    if report_format == "csv":
        return Response(
            report.render_csv(plan=kpis),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{_report_filename(plan_id, "csv")}"'
            },
        )
    daily = await store.run(warehouse.plan_daily_spend, plan_id=plan_id, **period)
    now = dt.datetime.now(dt.UTC)
    sections = await _budget_and_sales(store, fx, rule, plan=kpis, start=start, end=end, now=now)
    sections["modelled"] = await _modelled(store, fx, plan=kpis)
    sections["trade"] = await report_views.trade_views(store, fx, plan=kpis, start=start, end=end)
    page = report_html.render_html(plan=kpis, daily_spend=daily, generated_at=now, **sections)
    return HTMLResponse(
        page,
        headers={
            "Content-Disposition": f'inline; filename="{_report_filename(plan_id, "html")}"',
            "Content-Security-Policy": _REPORT_CSP,
        },
    )


MODELLED_CAMPAIGNS = 20
"""The most campaigns the report models (each model reads its peers' totals)."""


async def _modelled(store: Warehouse, fx: FxRates, *, plan: dict[str, Any]) -> str:
    """The report's "Modelled vs actual" section: the first ``MODELLED_CAMPAIGNS`` campaigns
    of the plan, each modelled from the campaigns measured before its start."""
    rows = []
    for campaign in list(plan.get("campaigns") or ())[:MODELLED_CAMPAIGNS]:
        known = await campaign_models.model_known(
            store, fx, campaign_id=str(campaign["campaign_id"])
        )
        rows.append(
            report_models.ModelledCampaign(
                label=report.campaign_label(campaign),
                model=known.model if known and known.model.peers else None,
                actual=campaign,
            )
        )
    return report_models.model_section(rows)


async def _budget_and_sales(
    store: Warehouse,
    fx: FxRates,
    rule: progress.AtRiskRule,
    *,
    plan: dict[str, Any],
    start: dt.datetime | None,
    end: dt.datetime | None,
    now: dt.datetime,
) -> dict[str, str]:
    """The report's budget tree and sales-target progress sections (``report_sections``): the
    plan's budget, and the targets of the periods overlapping [from, to) or the plan's period."""
    plan_budget = await store.run(budgets.plan_budget, plan_id=plan["plan_id"])
    plan_days = (plan_budget.period.start, plan_budget.period.end) if plan_budget else None
    days = report_sections.window(period=plan_days, start=start, end=end)
    periods: list[progress.PeriodProgress] = []
    if days is not None:
        found = await store.run(sales_targets.targets_of_window, start=days[0], end=days[1])
        periods = progress.periods_progress(
            units=found.units, targets=found.targets, groups=found.groups, now=now, fx=fx, rule=rule
        )
    names = {str(c["campaign_id"]): report.campaign_label(c) for c in plan["campaigns"]}
    return {
        "budget_tree": report_sections.budget_section(
            plan=plan_budget,
            plan_name=str(plan.get("name") or plan["plan_id"]),
            months_of=days if start or end else None,
            campaign_names=names,
        ),
        "sales_progress": report_sections.sales_section(
            periods=periods, days=days, rule=rule, as_of=now
        ),
    }


# --------------------------------------------------------------------------------------------
# channel and company scopes, time series, time between stages, campaign comparison
# --------------------------------------------------------------------------------------------

SeriesScope = Annotated[
    Literal["campaign", "plan", "channel", "company", "brand", "partner", "product", "region"],
    Query(
        description="What the series covers; 'id' names it unless the scope is company. "
        "brand, partner, product and region: that value's sales (and a brand's campaigns' "
        "marketing figures), see the TradeSeries shape."
    ),
]
Bucket = Annotated[Literal["day", "week"], Query(description="UTC days or ISO weeks.")]
Required = Annotated[
    UtcDatetime,
    Query(alias="from", description="Start of the period (inclusive), RFC 3339 with offset."),
]
RequiredTo = Annotated[
    UtcDatetime,
    Query(alias="to", description="End of the period (exclusive), RFC 3339 with offset."),
]


@router.get("/kpis/channels/{channel}", response_model=schemas.ChannelKpis)
async def channel_kpis(
    channel: Channel,
    store: Store,
    fx: Fx,
    _: Reader,
    plan_id: Identifier | None = None,
    start: From = None,
    end: To = None,
    currency: ReportingCurrency = None,
) -> JSONResponse:
    """Every KPI of a channel over [from, to), within one plan when ``plan_id`` is given, in one
    currency and per currency; its CKPI weighs the targets of the channel's campaigns, each on
    its own campaign's KPIs."""
    kpis = await store.run(
        warehouse.channel_kpis,
        channel=channel,
        plan_id=plan_id,
        **period_of(start, end),
        **reporting_in(currency, fx),
    )
    if kpis is None:
        raise NotFound("plan", plan_id or "")
    return respond(kpis)


@router.get("/kpis/company", response_model=schemas.CompanyKpis)
async def company_kpis(
    store: Store,
    fx: Fx,
    _: Reader,
    start: From = None,
    end: To = None,
    currency: ReportingCurrency = None,
) -> JSONResponse:
    """Every KPI of the whole company over [from, to), unattributed sales and leads included,
    in one currency and per currency; its CKPI weighs the targets of every campaign of the
    period, each on its own KPIs."""
    period, reporting = period_of(start, end), reporting_in(currency, fx)
    return respond(await store.run(warehouse.company_kpis, **period, **reporting))


@router.get(
    "/kpis/series",
    response_model=schemas.KpiSeries | trade_schemas.TradeSeries,
    responses={200: {"content": {"application/json": {"examples": trade_schemas.SERIES_EXAMPLES}}}},
)
async def kpi_series(
    store: Store,
    fx: Fx,
    _: Reader,
    scope: SeriesScope,
    start: Required,
    end: RequiredTo,
    scope_id: Annotated[
        trade_api.SeriesId | None,
        Query(
            alias="id",
            description="The campaign or plan id, the channel, or the brand, partner id, "
            "product id or region as the sales carry it; not for scope company.",
        ),
    ] = None,
    bucket: Bucket = "day",
    currency: ReportingCurrency = None,
    sale_kind: trade_api.SeriesSaleKind = None,
) -> JSONResponse:
    """Spend, leads, new customers, revenue, CPL and ROMI per day or week of [from, to), in one
    currency and per currency. By brand, partner, product or region: units, orders, revenue,
    gross profit, discounts and average check of that value's sales (``sale_kind``: sell-in or
    sell-out only), and for a brand its campaigns' spend, leads, CPL and ROMI."""
    period = period_of(start, end)
    reporting = reporting_in(currency, fx)
    trade_api.check_series_args(scope=scope, sale_kind=sale_kind)
    if scope != "company" and not scope_id:
        raise DomainError(
            f"is required for scope {scope}", field="id", status_code=422, location="query"
        )
    buckets = len(warehouse.series_buckets(start=start, end=end, bucket=bucket))
    if buckets > warehouse.MAX_SERIES_BUCKETS:
        raise DomainError(
            f"at most {warehouse.MAX_SERIES_BUCKETS} {bucket} buckets per series",
            field="to",
            status_code=422,
            location="query",
        )
    if scope in warehouse.TRADE_SCOPES:
        return respond(
            await store.run(
                warehouse.trade_series,
                scope=scope,
                id=scope_id,
                bucket=bucket,
                sale_kind=sale_kind,
                **period,
                **reporting,
            )
        )
    series = await store.run(
        warehouse.kpi_series, scope=scope, id=scope_id, bucket=bucket, **period, **reporting
    )
    if series is None:
        raise NotFound(scope, scope_id or "")
    return respond(series)


@router.get("/funnel/durations")
async def stage_durations(
    store: Store,
    _: Reader,
    campaign_id: Identifier | None = None,
    start: From = None,
    end: To = None,
) -> JSONResponse:
    """Count, average and median hours from a lead first reaching a stage to the next one."""
    return respond(
        await store.run(warehouse.stage_durations, campaign_id=campaign_id, **period_of(start, end))
    )


@router.get("/campaigns/{campaign_id}/comparison", response_model=schemas.Comparison)
async def compare_campaign(
    campaign_id: Identifier,
    store: Store,
    fx: Fx,
    _: Reader,
    limit: Annotated[int, Query(ge=1, le=100, description="Most past peers to list.")] = 10,
    currency: ReportingCurrency = None,
) -> JSONResponse:
    """A campaign next to past campaigns of its channel or brand: cost, CPL, ROMI, conversion;
    each in its own currency, the peers pooled in one currency and per currency."""
    comparison = await store.run(
        warehouse.compare_campaign,
        campaign_id=campaign_id,
        limit=limit,
        **reporting_in(currency, fx),
    )
    if comparison is None:
        raise NotFound("campaign", campaign_id)
    return respond(comparison)


# --------------------------------------------------------------------------------------------
# trade marketing: sales by brand, partner, product, region, outlet or channel
# --------------------------------------------------------------------------------------------

SalesDimension = Annotated[
    Literal["brand", "partner", "product", "region", "outlet", "channel"],
    Query(
        description="One row per value of it. Brands and channels also carry their campaigns' "
        "spend and ROMI; partners, products, regions and outlets have no spend of their own."
    ),
]
SaleKind = Annotated[
    Literal["sell_in", "sell_out"] | None,
    Query(description="Only sales to trade partners (sell_in) or theirs to consumers (sell_out)."),
]


@router.get(
    "/kpis/sales",
    response_model=schemas.SalesBreakdown,
    responses={200: {"content": {"application/json": {"examples": schemas.SALES_EXAMPLES}}}},
)
async def sales_by(
    store: Store,
    fx: Fx,
    _: Reader,
    by: SalesDimension,
    sale_kind: SaleKind = None,
    start: From = None,
    end: To = None,
    currency: ReportingCurrency = None,
) -> JSONResponse:
    """The sales of [from, to) by brand, trade partner, product, region, outlet or channel:
    orders, revenue, discounts, average check, gross profit and share of revenue per value,
    with spend, ROMI and ROI for brands and channels; in one currency and per currency."""
    period, reporting = period_of(start, end), reporting_in(currency, fx)
    return respond(
        await store.run(warehouse.sales_by, by=by, sale_kind=sale_kind, **period, **reporting)
    )
