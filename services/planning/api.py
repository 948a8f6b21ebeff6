"""Planning's HTTP routes (SPEC §5): thin views over the use cases."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from services.planning import store, usecases
from services.planning.schemas import (
    CampaignIn,
    CampaignOut,
    CampaignPatch,
    ChangeRequestOut,
    KpiTargetIn,
    KpiTargetOut,
    PlanIn,
    PlanOut,
    PlanPatch,
    ProposalOut,
    StageIn,
    StageOut,
)
from services.planning.store import Store
from shared.auth import APPROVERS, PLANNERS, READERS, Principal, require
from shared.errors import NotFound
from shared.events.envelope import (
    Identifier,
)

router = APIRouter(prefix="/api/v1", tags=["planning"])


def get_store(request: Request) -> Store:
    """The store built by the app's lifespan."""
    return request.app.state.store  # type: ignore[no-any-return]


DB = Annotated[Store, Depends(get_store)]
Reader = Annotated[Principal, Depends(require(*READERS))]
Planner = Annotated[Principal, Depends(require(*PLANNERS))]
Approver = Annotated[Principal, Depends(require(*APPROVERS))]


def change_request_out(row: store.ChangeRequest) -> ChangeRequestOut:
    """A change request row as the API shows it."""
    return ChangeRequestOut(
        request_id=row.id,
        campaign_id=row.campaign_id,
        changes=json.loads(row.changes),
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        status=row.status,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        reason=row.reason,
    )


def _campaign_out(session: store.Session, row: store.Campaign, *, deep: bool) -> CampaignOut:
    stages = store.list_stages(session=session, campaign_id=row.id) if deep else []
    targets = store.list_targets(session=session, campaign_id=row.id) if deep else []
    return CampaignOut(
        campaign_id=row.id,
        plan_id=row.plan_id,
        name=row.name,
        channel=row.channel,
        brand=row.brand,
        owner=row.owner,
        budget=row.budget,
        currency=row.currency,
        start_date=row.start_date,
        end_date=row.end_date,
        gross_margin=row.gross_margin,
        status=row.status,
        version=row.version,
        line_id=row.line_id,
        sales_unit_id=row.sales_unit_id,
        planned_uplift=row.planned_uplift,
        target_segment=row.target_segment,
        change_requests=[
            change_request_out(request)
            for request in store.open_change_requests(session=session, campaign_id=row.id)
        ]
        if deep
        else [],
        stages=[
            StageOut(
                stage_id=s.id,
                campaign_id=s.campaign_id,
                name=s.name,
                deadline=s.deadline,
                starts_at=s.starts_at,
                assignee=s.assignee,
            )
            for s in stages
        ],
        kpi_targets=[
            KpiTargetOut(
                target_id=t.id,
                kpi=t.kpi,
                target=t.target,
                direction=t.direction,
                weight=t.weight,
                tolerance=t.tolerance,
            )
            for t in targets
        ],
    )


def _plan_out(session: store.Session, plan: store.Plan, *, deep: bool) -> PlanOut:
    campaigns = store.list_campaigns(session=session, plan_id=plan.id)
    return PlanOut(
        plan_id=plan.id,
        name=plan.name,
        period_start=plan.period_start,
        period_end=plan.period_end,
        currency=plan.currency,
        owner=plan.owner,
        status=plan.status,
        approved_by=plan.approved_by,
        budget=plan.budget,
        total_budget=sum((Decimal(c.budget) for c in campaigns), Decimal("0")),
        campaigns=[_campaign_out(session, c, deep=False) for c in campaigns] if deep else [],
    )


def _load_plan(db: Store, plan_id: str, *, deep: bool) -> PlanOut:
    with db.reading() as session:
        plan = store.get_plan(session=session, plan_id=plan_id)
        if plan is None:
            raise NotFound("plan", plan_id)
        return _plan_out(session, plan, deep=deep)


def load_campaign(db: Store, campaign_id: str) -> CampaignOut:
    """A campaign with its stages, KPI targets and open change requests (404 if unknown)."""
    with db.reading() as session:
        row = store.get_campaign(session=session, campaign_id=campaign_id)
        if row is None:
            raise NotFound("campaign", campaign_id)
        return _campaign_out(session, row, deep=True)


@router.post("/plans", status_code=status.HTTP_201_CREATED, response_model=PlanOut)
def create_plan(body: PlanIn, db: DB, principal: Planner, request: Request) -> PlanOut:
    """Create a draft plan (its currency defaults to the platform's)."""
    plan_id = usecases.create_plan(
        db=db,
        name=body.name,
        period_start=body.period_start,
        period_end=body.period_end,
        currency=body.currency or request.app.state.settings.currency,
        owner=body.owner or principal.subject,
        budget=body.budget,
        principal=principal,
        default_rule=request.app.state.settings.default_rule(),
    )
    return _load_plan(db, plan_id, deep=True)


@router.patch("/plans/{plan_id}", response_model=PlanOut)
def patch_plan(plan_id: Identifier, body: PlanPatch, db: DB, principal: Planner) -> PlanOut:
    """Change a plan's name, owner or budget cap (an approved plan's cap: cmo, admin)."""
    usecases.update_plan(db=db, plan_id=plan_id, changes=body.model_dump(), principal=principal)
    return _load_plan(db, plan_id, deep=True)


@router.get("/plans", response_model=list[PlanOut])
def list_plans(db: DB, _: Reader) -> list[PlanOut]:
    """Every plan, newest first."""
    with db.reading() as session:
        return [_plan_out(session, plan, deep=False) for plan in store.list_plans(session=session)]


@router.get("/plans/{plan_id}", response_model=PlanOut)
def get_plan(plan_id: Identifier, db: DB, _: Reader) -> PlanOut:
    """A plan with its campaigns."""
    return _load_plan(db, plan_id, deep=True)


@router.post("/plans/{plan_id}/approve", response_model=PlanOut)
def approve_plan(plan_id: Identifier, db: DB, principal: Approver) -> PlanOut:
    """Approve a plan (cmo, admin)."""
    usecases.approve_plan(db=db, plan_id=plan_id, principal=principal)
    return _load_plan(db, plan_id, deep=True)


@router.post(
    "/plans/{plan_id}/campaigns", status_code=status.HTTP_201_CREATED, response_model=CampaignOut
)
def create_campaign(
    plan_id: Identifier, body: CampaignIn, db: DB, principal: Planner
) -> CampaignOut:
    """Add a campaign to a plan, as a draft (submit it for approval, or approve the plan)."""
    campaign_id = usecases.plan_campaign(
        db=db, plan_id=plan_id, principal=principal, **body.model_dump()
    )
    return load_campaign(db, campaign_id)


@router.get("/plans/{plan_id}/campaigns", response_model=list[CampaignOut])
def list_campaigns(plan_id: Identifier, db: DB, _: Reader) -> list[CampaignOut]:
    """The campaigns of a plan."""
    return _load_plan(db, plan_id, deep=True).campaigns


@router.get("/plans/{plan_id}/reallocation-proposals", response_model=list[ProposalOut])
def list_proposals(plan_id: Identifier, db: DB, _: Reader) -> list[ProposalOut]:
    """Budget reallocations measurement proposed for a plan."""
    _load_plan(db, plan_id, deep=False)
    with db.reading() as session:
        return [
            ProposalOut(
                proposal_id=p.event_id,
                from_campaign_id=p.from_campaign_id,
                to_campaign_id=p.to_campaign_id or None,
                to_line_id=p.to_line_id,
                amount=p.amount,
                reason=p.reason,
                rule_id=p.rule_id,
                mode=p.mode or "propose",
                proposed_at=p.proposed_at,
                status=p.status,  # type: ignore[arg-type]
                note=p.note,
            )
            for p in store.list_proposals(session=session, plan_id=plan_id)
        ]


@router.get("/campaigns/{campaign_id}", response_model=CampaignOut)
def get_campaign(campaign_id: Identifier, db: DB, _: Reader) -> CampaignOut:
    """A campaign with its stages and KPI targets."""
    return load_campaign(db, campaign_id)


@router.patch(
    "/campaigns/{campaign_id}",
    response_model=CampaignOut,
    responses={202: {"model": CampaignOut, "description": "A change request was opened"}},
)
def patch_campaign(
    campaign_id: Identifier,
    body: CampaignPatch,
    db: DB,
    principal: Planner,
    response: Response,
) -> CampaignOut:
    """Change a campaign. The budget, line or dates of an approved (active, paused) campaign
    changed by a manager open a change request instead (202; the approved values stand and
    the request is listed under ``change_requests``); a CMO or admin changes them at once."""
    request_id = usecases.update_campaign(
        db=db,
        campaign_id=campaign_id,
        changes=body.model_dump(),
        principal=principal,
    )
    if request_id is not None:
        response.status_code = status.HTTP_202_ACCEPTED
    return load_campaign(db, campaign_id)


@router.post(
    "/campaigns/{campaign_id}/stages", status_code=status.HTTP_201_CREATED, response_model=StageOut
)
def create_stage(campaign_id: Identifier, body: StageIn, db: DB, principal: Planner) -> StageOut:
    """Schedule a stage of a campaign."""
    stage_id = usecases.schedule_stage(
        db=db, campaign_id=campaign_id, principal=principal, **body.model_dump()
    )
    return next(s for s in load_campaign(db, campaign_id).stages if s.stage_id == stage_id)


@router.post(
    "/campaigns/{campaign_id}/kpi-targets",
    status_code=status.HTTP_201_CREATED,
    response_model=KpiTargetOut,
)
def set_kpi_target(
    campaign_id: Identifier, body: KpiTargetIn, db: DB, principal: Planner
) -> KpiTargetOut:
    """Set a campaign's target for a KPI (replacing an earlier one for that KPI)."""
    target_id = usecases.set_kpi_target(
        db=db, campaign_id=campaign_id, principal=principal, **body.model_dump()
    )
    return next(t for t in load_campaign(db, campaign_id).kpi_targets if t.target_id == target_id)
