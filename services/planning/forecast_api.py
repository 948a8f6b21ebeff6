"""Planning's forecast route (SPEC §5 ``POST /api/v1/campaigns/{id}/forecast``): a campaign's
planned figures, the model kept at its approval (``forecast_store``) and its actual spend, side
by side."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from services.planning import budget_usecases, store
from services.planning.api import DB, Reader
from services.planning.forecast_store import CampaignModel
from services.planning.store import Store
from services.planning.usecases import load_campaign
from shared.events.envelope import Identifier
from shared.money import FxRates

router = APIRouter(prefix="/api/v1", tags=["campaign forecast"])
APPROVED = frozenset({"approved", "active", "paused", "completed"})


class BandOut(BaseModel):
    """A modelled figure: P10, P50, P90."""

    p10: Decimal | None
    p50: Decimal | None
    p90: Decimal | None


class ModelledOut(BaseModel):
    """What measurement expected when the campaign was approved."""

    as_of: dt.datetime
    currency: str
    budget: Decimal
    match: str
    peers: int
    figures: dict[str, BandOut]


class ForecastOut(BaseModel):
    """A campaign's planned figures, the model kept at its approval and its actual spend.
    ``status``: ``modelled``; ``pending`` (approved, the model not in yet); ``not_approved``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "campaign_id": "0b7e4c8a-1d2e-4f00-9a1b-2c3d4e5f6a7b",
                    "status": "modelled",
                    "planned": {
                        "budget": "20000.00",
                        "currency": "EUR",
                        "start_date": "2027-04-01",
                        "end_date": "2027-05-31",
                    },
                    "modelled": {
                        "as_of": "2027-04-01T00:00:00Z",
                        "currency": "EUR",
                        "budget": "20000.00",
                        "match": "channel_brand",
                        "peers": 6,
                        "figures": {"leads": {"p10": "760", "p50": "810", "p90": "905"}},
                    },
                    "actual": {"spend": "4210.55"},
                }
            ]
        }
    )

    campaign_id: str
    status: Literal["modelled", "pending", "not_approved"]
    planned: dict[str, Any]
    modelled: ModelledOut | None
    actual: dict[str, Decimal]


def forecast(*, db: Store, campaign_id: str, fx: FxRates) -> ForecastOut:
    """The campaign's forecast as planning knows it."""
    with db.unit_of_work() as uow:
        row = load_campaign(uow, campaign_id)
        facts = store.campaign_facts(row)
        plan = store.get_plan(session=uow.session, plan_id=facts.plan_id)
        currency = plan.currency if plan else facts.currency
        spent = budget_usecases.spent_of(uow, [campaign_id], currency=currency, fx=fx)
        kept = uow.session.get(CampaignModel, campaign_id)
        modelled = None
        if kept is not None:
            modelled = ModelledOut(
                as_of=kept.as_of,
                currency=kept.currency,
                budget=kept.budget,
                match=kept.match,
                peers=kept.peers,
                figures=json.loads(kept.figures),
            )
    status: Literal["modelled", "pending", "not_approved"] = "modelled"
    if modelled is None:
        status = "pending" if facts.status in APPROVED else "not_approved"
    return ForecastOut(
        campaign_id=campaign_id,
        status=status,
        planned={
            "budget": facts.budget,
            "currency": facts.currency,
            "start_date": facts.start_date,
            "end_date": facts.end_date,
        },
        modelled=modelled,
        actual={"spend": spent.get(campaign_id, Decimal("0.00"))},
    )


@router.post("/campaigns/{campaign_id}/forecast", response_model=ForecastOut)
def campaign_forecast(campaign_id: Identifier, db: DB, _: Reader, request: Request) -> ForecastOut:
    """A campaign's forecast: planned, the model kept at its approval (measurement makes it
    from the campaigns measured before the campaign starts) and actual spend side by side."""
    return forecast(db=db, campaign_id=campaign_id, fx=request.app.state.fx)
