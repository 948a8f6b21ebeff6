"""Planning's approval routes: a campaign's submission, approval and rejection, change requests
to approved campaigns, and the audit log of every change."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from services.planning import store, usecases
from services.planning.api import (
    DB,
    Approver,
    Planner,
    Reader,
    change_request_out,
    load_campaign,
)
from services.planning.schemas import CampaignOut, ChangeRequestOut, StrictBody
from shared.errors import NotFound
from shared.events.envelope import Identifier, Text

router = APIRouter(prefix="/api/v1", tags=["approvals"])

Reason = Annotated[Text, Field(min_length=1)]


class DecisionIn(StrictBody):
    """A decision's comment (a rejection needs one)."""

    reason: Reason | None = None


class RejectionIn(StrictBody):
    """Why a campaign or change request is rejected."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "CPL above target"}]})

    reason: Reason


class AuditOut(BaseModel):
    """One change: who (subject and role), when, what, and the state before and after."""

    entity_type: str
    entity_id: str
    plan_id: str | None
    action: str
    actor: str
    role: str
    at: dt.datetime
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None


def _move(db: DB, campaign_id: str, status: str, principal: Any, reason: str | None) -> CampaignOut:
    usecases.change_status(
        db=db, campaign_id=campaign_id, status=status, reason=reason, principal=principal
    )
    return load_campaign(db, campaign_id)


@router.post("/campaigns/{campaign_id}/submit", response_model=CampaignOut)
def submit_campaign(campaign_id: Identifier, db: DB, principal: Planner) -> CampaignOut:
    """Submit a draft campaign for approval."""
    return _move(db, campaign_id, "submitted", principal, None)


@router.post("/campaigns/{campaign_id}/approve", response_model=CampaignOut)
def approve_campaign(
    campaign_id: Identifier, db: DB, principal: Approver, body: DecisionIn | None = None
) -> CampaignOut:
    """Approve a submitted (or draft) campaign (cmo, admin)."""
    return _move(db, campaign_id, "approved", principal, body.reason if body else None)


@router.post("/campaigns/{campaign_id}/reject", response_model=CampaignOut)
def reject_campaign(
    campaign_id: Identifier, body: RejectionIn, db: DB, principal: Approver
) -> CampaignOut:
    """Reject a submitted campaign with a reason (cmo, admin); it may be reworked as a draft."""
    return _move(db, campaign_id, "rejected", principal, body.reason)


@router.get("/campaigns/{campaign_id}/change-requests", response_model=list[ChangeRequestOut])
def list_change_requests(campaign_id: Identifier, db: DB, _: Reader) -> list[ChangeRequestOut]:
    """Every change request of a campaign, newest first."""
    with db.reading() as session:
        if store.get_campaign(session=session, campaign_id=campaign_id) is None:
            raise NotFound("campaign", campaign_id)
        return [
            change_request_out(row)
            for row in store.list_change_requests(session=session, campaign_id=campaign_id)
        ]


@router.post("/change-requests/{request_id}/accept", response_model=CampaignOut)
def accept_change(
    request_id: Identifier, db: DB, principal: Approver, body: DecisionIn | None = None
) -> CampaignOut:
    """Apply an open change request (cmo, admin), checked against the budget as it is now."""
    campaign_id = usecases.decide_change_request(
        db=db,
        request_id=request_id,
        accept=True,
        reason=body.reason if body else None,
        principal=principal,
    )
    return load_campaign(db, campaign_id)


@router.post("/change-requests/{request_id}/reject", response_model=CampaignOut)
def reject_change(
    request_id: Identifier, body: RejectionIn, db: DB, principal: Approver
) -> CampaignOut:
    """Reject an open change request with a reason (cmo, admin); the approved values stay."""
    campaign_id = usecases.decide_change_request(
        db=db, request_id=request_id, accept=False, reason=body.reason, principal=principal
    )
    return load_campaign(db, campaign_id)


@router.get("/audit", response_model=list[AuditOut])
def audit(
    db: DB,
    _: Reader,
    entity_id: Annotated[Identifier | None, Query()] = None,
    plan_id: Annotated[Identifier | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[AuditOut]:
    """Every change to a plan, budget line, campaign, stage, KPI target, reallocation or change
    request — of one entity (``entity_id``) or a whole plan (``plan_id``) — newest first."""
    with db.reading() as session:
        rows = store.list_audit(
            session=session, entity_id=entity_id, plan_id=plan_id, limit=limit, offset=offset
        )
        return [
            AuditOut(
                entity_type=row.entity_type,
                entity_id=row.entity_id,
                plan_id=row.plan_id,
                action=row.action,
                actor=row.actor,
                role=row.role,
                at=row.at,
                before=json.loads(row.before) if row.before else None,
                after=json.loads(row.after) if row.after else None,
                reason=row.reason,
            )
            for row in rows
        ]
