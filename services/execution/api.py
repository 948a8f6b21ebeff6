"""Execution's HTTP API: campaign progress (spend against plan, stages) and stage statuses."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from services.execution import store, usecases
from services.execution.domain import NotAllowed
from shared.auth import READERS, Principal, require
from shared.clock import Clock
from shared.events.envelope import Identifier, Text
from shared.events.ingest import TaskStatus
from shared.events.planning import CampaignStatus
from shared.http import NotFound
from shared.money import FxRates
from shared.outbox import OutboxRelay

router = APIRouter(prefix="/api/v1", tags=["execution"])
MAX_OFFSET = 1_000_000
"""The deepest page of a listing (a larger offset would overflow the databases' integers)."""


@dataclass(frozen=True)
class ApiDeps:
    """What the routes need, built by the composition root and kept on ``app.state``."""

    engine: Engine
    relay: OutboxRelay
    clock: Clock
    fx: FxRates


def deps(request: Request) -> ApiDeps:
    """The API's dependencies from the running app."""
    return request.app.state.execution  # type: ignore[no-any-return]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class StageOut(_Out):
    """A stage's schedule and status."""

    stage_id: str
    name: str | None
    status: TaskStatus
    deadline: dt.datetime | None
    starts_at: dt.datetime | None
    assignee: str | None
    overdue: bool
    completed_at: dt.datetime | None
    status_as_of: dt.datetime | None
    status_by: str | None
    status_comment: str | None


class CampaignSummary(_Out):
    """A campaign's spend against plan."""

    campaign_id: str
    plan_id: str | None
    name: str | None
    channel: str | None
    owner: str | None
    status: str | None
    start_date: dt.date | None
    end_date: dt.date | None
    currency: str | None
    budget: Decimal | None
    spend: Decimal
    unconverted_spend: dict[str, Decimal] = Field(
        description="Spend in currencies with no rate to the campaign's currency (not in spend)."
    )
    utilisation: Decimal | None = Field(description="spend / budget; null for a zero budget.")
    burn_rate_per_day: Decimal | None
    elapsed_share: Decimal | None = Field(description="Share of the campaign's duration elapsed.")
    forecast_at_completion: Decimal | None = Field(description="spend / elapsed share.")
    overspend_forecast: bool
    thresholds_crossed: list[int] = Field(description="Budget thresholds (%) currently crossed.")
    as_of: dt.datetime


class CampaignProgressOut(CampaignSummary):
    """A campaign's spend against plan and its stages."""

    stages: list[StageOut]


class StageStatusChange(BaseModel):
    """A new status for a stage."""

    model_config = ConfigDict(extra="forbid")

    status: TaskStatus
    comment: Text | None = None


Deps = Annotated[ApiDeps, Depends(deps)]
Reader = Annotated[Principal, Depends(require(*READERS))]


@router.get("/campaigns", response_model=list[CampaignSummary])
async def list_campaigns(
    d: Deps,
    _principal: Reader,
    plan_id: Identifier | None = None,
    campaign_status: Annotated[CampaignStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[usecases.CampaignProgress]:
    """Campaigns known to execution with their spend against plan."""

    def read() -> list[usecases.CampaignProgress]:
        with store.unit_of_work(engine=d.engine) as session:
            return usecases.list_progress(
                session=session,
                plan_id=plan_id,
                status=campaign_status,
                limit=limit,
                offset=offset,
                now=d.clock.now(),
                fx=d.fx,
            )

    return await asyncio.to_thread(read)


@router.get("/campaigns/{campaign_id}/progress", response_model=CampaignProgressOut)
async def campaign_progress(
    campaign_id: Annotated[Identifier, Path()],
    d: Deps,
    _principal: Reader,
) -> usecases.CampaignProgress:
    """Spend, utilisation, burn rate, forecast at completion, thresholds and stages."""

    def read() -> usecases.CampaignProgress:
        with store.unit_of_work(engine=d.engine) as session:
            return usecases.campaign_progress(
                session=session, campaign_id=campaign_id, now=d.clock.now(), fx=d.fx
            )

    try:
        return await asyncio.to_thread(read)
    except usecases.UnknownCampaign:
        raise NotFound("campaign", campaign_id) from None


@router.get("/stages/{stage_id}", response_model=StageOut)
async def get_stage(
    stage_id: Annotated[Identifier, Path()],
    d: Deps,
    _principal: Reader,
) -> usecases.StageProgress:
    """A stage's schedule and status."""

    def read() -> usecases.StageProgress | None:
        with store.unit_of_work(engine=d.engine) as session:
            stage = store.get_stage(session=session, stage_id=stage_id)
            return None if stage is None else usecases.stage_progress(stage, now=d.clock.now())

    found = await asyncio.to_thread(read)
    if found is None:
        raise NotFound("stage", stage_id)
    return found


@router.post("/stages/{stage_id}/status", response_model=StageOut)
async def change_stage_status(
    stage_id: Annotated[Identifier, Path()],
    change: StageStatusChange,
    d: Deps,
    principal: Reader,
) -> usecases.StageProgress:
    """Set a stage's status (managers, the CMO, admins: any stage; executors: their own)."""

    def write() -> usecases.StageProgress:
        now = d.clock.now()
        with store.unit_of_work(engine=d.engine) as session:
            stage = usecases.set_stage_status(
                session=session,
                stage_id=stage_id,
                status=change.status,
                comment=change.comment,
                role=principal.role,
                subject=principal.subject,
                now=now,
            )
            return usecases.stage_progress(stage, now=now)

    try:
        result = await asyncio.to_thread(write)
    except usecases.UnknownStage:
        raise NotFound("stage", stage_id) from None
    except NotAllowed as exc:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=[{"loc": ["path", "stage_id"], "msg": str(exc), "type": "forbidden"}],
        ) from None
    d.relay.wake()
    return result
