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

from services.measurement import campaign_models, modelling, warehouse
from services.measurement.api import Fx, Reader, Store, respond
from services.measurement.model_schemas import (
    BacktestOut,
    ModelOut,
    ModelRequest,
    ScenarioOut,
    ScenarioRequest,
)
from services.measurement.warehouse import peers as peer_tables
from shared.errors import DomainError, NotFound
from shared.events.envelope import Currency, Identifier
from shared.money import FxRates

router = APIRouter(prefix="/api/v1", tags=["campaign model"])


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
