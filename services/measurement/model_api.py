"""Measurement's campaign-model routes: what a campaign would give (``modelling``), asked for
a campaign not yet planned (``POST /models/campaign``) or for a known one, next to what it has
given so far (``GET /campaigns/{id}/model``). Both learn only from what happened before the
campaign starts (or before now, for one that has not started)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.measurement import campaign_models, modelling, warehouse
from services.measurement.api import Fx, Reader, Store, respond
from services.measurement.warehouse import peers as peer_tables
from shared.errors import DomainError, NotFound
from shared.events.envelope import Channel, Currency, Date, Identifier, Money, Name
from shared.money import FxRates

router = APIRouter(prefix="/api/v1", tags=["campaign model"])

MinPeers = Annotated[int, Field(ge=1, le=50)]


class ModelRequest(BaseModel):
    """A campaign to model: its channel, brand, partner and target segment (optional), budget
    and dates (unknown fields are refused)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "channel": "search",
                    "brand": "Acme",
                    "budget": "20000.00",
                    "start_date": "2027-04-01",
                    "end_date": "2027-05-31",
                },
                {
                    "channel": "events",
                    "brand": "Acme Pro",
                    "partner": "PartnerNet",
                    "segment": "rfm:champions",
                    "budget": "12000.00",
                    "start_date": "2027-04-01",
                    "end_date": "2027-04-30",
                    "currency": "EUR",
                    "min_peers": 5,
                },
            ]
        },
    )

    channel: Channel
    brand: Name | None = None
    partner: Name | None = Field(
        default=None, description="Peers of the same partner (budget line) weigh more."
    )
    segment: Identifier | None = Field(
        default=None,
        description="The customer segment the campaign targets (`rfm:<name>` or a rule-based "
        "segment's id): peers that targeted the same segment weigh more.",
    )
    budget: Annotated[Money, Field(gt=0)]
    start_date: Date
    end_date: Date
    currency: Currency | None = Field(
        default=None, description="Currency of the budget and the answer (default MRM_CURRENCY)."
    )
    min_peers: MinPeers = Field(
        default=3, description="Fewer peers of channel and brand than this widen the match."
    )


class BandOut(BaseModel):
    """A modelled figure: 10th, 50th and 90th percentile."""

    p10: Decimal | None
    p50: Decimal | None
    p90: Decimal | None


class PeerOut(BaseModel):
    """A past campaign the model learned from, and how similar it is (1 = same channel and
    brand)."""

    campaign_id: str
    name: str | None
    channel: str | None
    brand: str | None
    partner: str | None
    segment: str | None = Field(description="The customer segment it targeted (null = none).")
    matches: list[str] = Field(
        description="What it shares with the modelled campaign, of channel, brand, partner and "
        "segment: `segment` when it targeted the same segment (which adds 0.1 to its "
        "similarity, as the same partner does; capped at 1)."
    )
    similarity: Decimal
    spend: Decimal
    leads: Decimal | None
    revenue: Decimal | None


class CurveOut(BaseModel):
    """A fitted response curve ``a · ln(1 + spend / b)``."""

    a: float
    b: float
    method: str


class ModelOut(BaseModel):
    """What the campaign is expected to give: each figure's P10/P50/P90 (volumes: impressions,
    clicks, leads, mql, sql, customers, revenue, gross_profit; and cpl, cac, romi), the peers
    and curves it rests on, and ``match``: ``channel_brand``, ``channel`` or ``all``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "as_of": "2027-04-01T00:00:00Z",
                    "currency": "EUR",
                    "budget": "20000.00",
                    "match": "channel_brand",
                    "notes": [],
                    "figures": {
                        "leads": {"p10": "760", "p50": "810", "p90": "905"},
                        "cpl": {"p10": "22.10", "p50": "24.69", "p90": "26.32"},
                    },
                    "peers": [
                        {
                            "campaign_id": "c-2026-07",
                            "name": "Summer search",
                            "channel": "search",
                            "brand": "Acme",
                            "partner": None,
                            "segment": "rfm:champions",
                            "matches": ["channel", "brand", "segment"],
                            "similarity": "1",
                            "spend": "18000.00",
                            "leads": "760",
                            "revenue": "91000.00",
                        }
                    ],
                    "curves": {"leads": {"a": 500.2, "b": 10120.5, "method": "curve_fit"}},
                    "actual": None,
                }
            ]
        }
    )

    as_of: dt.datetime
    currency: str
    budget: Decimal
    match: str
    notes: list[str]
    figures: dict[str, BandOut]
    peers: list[PeerOut]
    curves: dict[str, CurveOut]
    actual: dict[str, Any] | None = Field(
        default=None, description="A known campaign's KPIs so far, next to the model."
    )


def _currency(given: str | None, fx: FxRates) -> str:
    """The answer's currency: the one asked for, which needs a rate, or MRM_CURRENCY."""
    currency = given or fx.base
    if fx.rate(currency) is None:
        raise DomainError(
            f"no FX rate configured for {currency}", field="currency", status_code=422
        )
    return currency


def _out(model: modelling.Model, **head: Any) -> dict[str, Any]:
    return {
        **head,
        "match": model.match,
        "notes": model.notes,
        "figures": {name: vars(band) for name, band in model.figures.items()},
        "peers": [
            {
                "campaign_id": p.campaign_id,
                "name": p.name,
                "channel": p.channel,
                "brand": p.brand,
                "partner": p.partner,
                "segment": p.segment,
                "matches": list(p.matches),
                "similarity": p.similarity,
                "spend": p.spend.quantize(Decimal("0.01")),
                "leads": p.results.get("leads"),
                "revenue": p.results.get("revenue"),
            }
            for p in sorted(model.peers, key=lambda p: (-p.similarity, p.campaign_id))
        ],
        "curves": {name: vars(curve) for name, curve in model.curves.items()},
    }


@router.post("/models/campaign", response_model=ModelOut)
async def model_new_campaign(body: ModelRequest, store: Store, fx: Fx, _: Reader) -> JSONResponse:
    """Model a campaign not yet planned from the campaigns measured before its start."""
    if body.end_date < body.start_date:
        raise DomainError("must not be before start_date", field="end_date", status_code=422)
    currency = _currency(body.currency, fx)
    as_of = campaign_models.as_of_for(body.start_date)
    query = modelling.Query(
        channel=body.channel,
        brand=body.brand,
        partner=body.partner,
        segment=body.segment,
        budget=body.budget,
    )
    model = await campaign_models.model_query(
        store, fx, query, as_of=as_of, currency=currency, min_peers=body.min_peers
    )
    head = {"as_of": as_of, "currency": currency, "budget": body.budget, "actual": None}
    return respond(_out(model, **head))


@router.get("/campaigns/{campaign_id}/model", response_model=ModelOut)
async def model_known_campaign(
    campaign_id: Identifier, store: Store, fx: Fx, _: Reader
) -> JSONResponse:
    """Model a known campaign (its channel, brand, partner and target segment) from the
    campaigns measured before its start (not itself), next to its KPIs so far."""
    known = await campaign_models.model_known(store, fx, campaign_id=campaign_id)
    if known is None:
        raise NotFound("campaign", campaign_id)
    actual = await store.run(warehouse.campaign_kpis, campaign_id=campaign_id)
    head = {
        "as_of": known.as_of,
        "currency": known.currency,
        "budget": known.budget,
        "actual": actual,
    }
    return respond(_out(known.model, **head))


class ScenarioCandidate(BaseModel):
    """Where the money may go: a channel (and brand, partner, target segment), with optional
    bounds."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="How the answer names this candidate (unique).")
    channel: Channel
    brand: Name | None = None
    partner: Name | None = None
    segment: Identifier | None = None
    min_amount: Money = Decimal(0)
    max_amount: Money | None = None


class ScenarioRequest(BaseModel):
    """A total budget to split over candidate channels or lines for the most expected gross
    profit."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "total_budget": "60000.00",
                    "start_date": "2027-04-01",
                    "end_date": "2027-06-30",
                    "candidates": [
                        {"name": "Search", "channel": "search", "brand": "Acme"},
                        {"name": "Social", "channel": "social", "max_amount": "20000.00"},
                        {
                            "name": "Partner events",
                            "channel": "events",
                            "partner": "PartnerNet",
                            "min_amount": "5000.00",
                        },
                    ],
                }
            ]
        },
    )

    total_budget: Annotated[Money, Field(gt=0)]
    start_date: Date
    end_date: Date
    currency: Currency | None = None
    candidates: Annotated[list[ScenarioCandidate], Field(min_length=1, max_length=50)]
    min_peers: MinPeers = 3


class ScenarioLine(BaseModel):
    """A candidate's share of the budget and what it is expected to give there (P50)."""

    name: str
    amount: Decimal
    match: str
    notes: list[str]
    leads: Decimal | None
    customers: Decimal | None
    revenue: Decimal | None
    gross_profit: Decimal | None
    romi: Decimal | None
    marginal_return: float | None = Field(
        description="Expected gross profit of the next unit of money at this amount."
    )


class ScenarioOut(BaseModel):
    """The split at equal marginal returns and the expected totals (sums of P50s)."""

    as_of: dt.datetime
    currency: str
    total_budget: Decimal
    lines: list[ScenarioLine]
    totals: dict[str, Decimal | None]


def _check_scenario(body: ScenarioRequest) -> None:
    if body.end_date < body.start_date:
        raise DomainError("must not be before start_date", field="end_date", status_code=422)
    names = [c.name for c in body.candidates]
    if len(set(names)) != len(names):
        raise DomainError("candidate names must differ", field="candidates", status_code=422)
    for c in body.candidates:
        if c.max_amount is not None and c.max_amount < c.min_amount:
            raise DomainError(
                f"candidate {c.name!r}: max_amount is below min_amount",
                field="candidates",
                status_code=422,
            )


@router.post("/models/plan-scenario", response_model=ScenarioOut)
async def plan_scenario(body: ScenarioRequest, store: Store, fx: Fx, _: Reader) -> JSONResponse:
    """Split a total budget over candidate channels or lines where it is expected to return the
    most gross profit (equal marginal returns on each candidate's fitted curve)."""
    _check_scenario(body)
    currency = _currency(body.currency, fx)
    as_of = campaign_models.as_of_for(body.start_date)
    found = await store.run(peer_tables.peers_before, as_of=as_of)
    peers, currency_notes = campaign_models.in_currency(found, currency, fx)
    queries = {
        c.name: modelling.Query(
            channel=c.channel,
            brand=c.brand,
            partner=c.partner,
            segment=c.segment,
            budget=body.total_budget,
        )
        for c in body.candidates
    }
    fitted = {
        name: modelling.model_campaign(query, peers, min_peers=body.min_peers)
        for name, query in queries.items()
    }
    candidates = []
    for c in body.candidates:
        curve = fitted[c.name].curves.get("gross_profit") or modelling.Curve(0.0, 1.0, "none")
        candidates.append(modelling.Candidate(c.name, curve, c.min_amount, c.max_amount))
    try:
        split = modelling.allocate(body.total_budget, candidates)
    except ValueError as exc:
        raise DomainError(str(exc), field="total_budget", status_code=422) from exc
    lines: list[dict[str, Any]] = []
    totals: dict[str, Decimal | None] = dict.fromkeys(
        ("leads", "customers", "revenue", "gross_profit"), Decimal(0)
    )
    for c, candidate in zip(body.candidates, candidates, strict=True):
        amount = split[c.name]
        model = modelling.model_campaign(
            replace(queries[c.name], budget=amount), peers, min_peers=body.min_peers
        )
        p50 = {name: band.p50 for name, band in model.figures.items()}
        for name in totals:
            value, so_far = p50.get(name), totals[name]
            totals[name] = None if value is None or so_far is None else so_far + value
        curve = candidate.curve
        lines.append(
            {
                "name": c.name,
                "amount": amount,
                "match": model.match,
                "notes": [*currency_notes, *model.notes],
                **{k: p50.get(k) for k in ("leads", "customers", "revenue", "gross_profit")},
                "romi": p50.get("romi"),
                "marginal_return": curve.a / (curve.b + float(amount)) if curve.b > 0 else None,
            }
        )
    profit = totals["gross_profit"]
    totals["romi"] = (
        None
        if profit is None
        else ((profit - body.total_budget) / body.total_budget).quantize(Decimal("0.000001"))
    )
    head = {"as_of": as_of, "currency": currency, "total_budget": body.total_budget}
    return respond({**head, "lines": lines, "totals": totals})


class AccuracyOut(BaseModel):
    """How the model did on one figure: over ``n`` campaigns, the mean absolute percentage
    error of P50 (``mape``, 0.12 = 12 %) and the share of actuals within P10–P90."""

    n: int
    mape: Decimal | None
    within_p10_p90: Decimal | None


class BacktestOut(BaseModel):
    """The model replayed on the campaigns that are over: each modelled at its actual spend
    from the campaigns over before it started, and compared with what it gave."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "as_of": "2027-06-30T12:00:00Z",
                    "currency": "EUR",
                    "campaigns": 48,
                    "modelled": 41,
                    "notes": [],
                    "figures": {"leads": {"n": 41, "mape": "0.1840", "within_p10_p90": "0.7561"}},
                }
            ]
        }
    )

    as_of: dt.datetime
    currency: str
    campaigns: int
    modelled: int
    notes: list[str]
    figures: dict[str, AccuracyOut]


@router.get("/models/backtest", response_model=BacktestOut)
async def model_backtest(
    store: Store,
    fx: Fx,
    _: Reader,
    min_peers: Annotated[int, Query(ge=1, le=50)] = 3,
    currency: Annotated[Currency | None, Query()] = None,
) -> JSONResponse:
    """How well the model would have done on the campaigns that are over (MAPE of P50 and
    P10–P90 coverage per figure) — the figures are what they are."""
    result = await campaign_models.backtest(
        store,
        fx,
        as_of=dt.datetime.now(dt.UTC),
        currency=_currency(currency, fx),
        min_peers=min_peers,
    )
    figures = {name: vars(value) for name, value in result.figures.items()}
    return respond({**vars(result), "figures": figures})
