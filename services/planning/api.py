"""Planning's HTTP routes (SPEC §5): thin views over the use cases."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import MISSING, BaseModel, ConfigDict, Field

from services.planning import store, usecases
from services.planning.store import Store
from shared.auth import APPROVERS, PLANNERS, READERS, Principal, require
from shared.errors import NotFound
from shared.events.envelope import (
    Channel,
    Currency,
    Date,
    Identifier,
    Measure,
    Money,
    Name,
    Share,
    UtcDatetime,
    Weight,
)
from shared.events.planning import CampaignStatus
from shared.kpis import KPI_NAMES, Direction
from shared.segments import TargetSegment

router = APIRouter(prefix="/api/v1", tags=["planning"])


def get_store(request: Request) -> Store:
    """The store built by the app's lifespan."""
    return request.app.state.store  # type: ignore[no-any-return]


DB = Annotated[Store, Depends(get_store)]
Reader = Annotated[Principal, Depends(require(*READERS))]
Planner = Annotated[Principal, Depends(require(*PLANNERS))]
Approver = Annotated[Principal, Depends(require(*APPROVERS))]


Tolerance = Annotated[Share, Field(lt=1)]


class StrictBody(BaseModel):
    """A request body: unknown fields are refused (422)."""

    model_config = ConfigDict(extra="forbid")


class PlanIn(StrictBody):
    """A new plan."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "FY2027",
                    "period_start": "2027-01-01",
                    "period_end": "2027-12-31",
                    "budget": "100000.00",
                }
            ]
        }
    )

    name: Name
    period_start: Date
    period_end: Date
    currency: Currency | None = None
    owner: Identifier | None = None
    budget: Money | None = None
    """The plan's total budget: the cap of its budget lines and campaigns (none = no cap)."""


class PlanPatch(StrictBody):
    """Changes to a plan; absent fields stay as they are. ``budget`` null removes the cap."""

    name: Name | MISSING = MISSING
    owner: Identifier | MISSING = MISSING
    budget: Money | MISSING | None = MISSING


class CampaignIn(StrictBody):
    """A new campaign of a plan."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Spring search",
                    "channel": "search",
                    "owner": "ann",
                    "budget": "20000.00",
                    "start_date": "2027-03-01",
                    "end_date": "2027-04-30",
                    "gross_margin": "0.4",
                    "line_id": "3f1c2b9e-3c1e-4a57-9a51-2d1c5f0e8b11",
                    "sales_unit_id": "0b7e4c8a-1d2e-4f00-9a1b-2c3d4e5f6a7b",
                    "planned_uplift": "50000.00",
                    "target_segment": "rfm:champions",
                }
            ]
        }
    )

    name: Name
    channel: Channel
    brand: Name | None = None
    owner: Identifier
    budget: Money
    start_date: Date
    end_date: Date
    gross_margin: Share = Decimal("1")
    line_id: Identifier | None = None
    """The budget line the campaign draws from (none = straight from the plan's budget)."""
    sales_unit_id: Identifier | None = None
    """The sales unit the campaign plans a sales uplift against."""
    planned_uplift: Money | None = None
    """The sales uplift planned against ``sales_unit_id``, in the plan's currency."""
    target_segment: TargetSegment | None = Field(
        default=None,
        description="The customer segment the campaign aims at: an RFM segment as "
        "`rfm:<name>` (e.g. `rfm:champions`) or a rule-based segment's id.",
        examples=["rfm:champions"],
    )


class CampaignPatch(StrictBody):
    """Changes to a campaign; absent fields stay as they are. Only ``brand``, ``line_id``,
    ``sales_unit_id``, ``planned_uplift`` and ``target_segment`` may be null (no brand; drawing
    from the plan itself; no planned uplift; no target segment): every other attribute is
    required, so an explicit null is refused (422)."""

    name: Name | MISSING = MISSING
    channel: Channel | MISSING = MISSING
    brand: Name | MISSING | None = MISSING
    owner: Identifier | MISSING = MISSING
    budget: Money | MISSING = MISSING
    start_date: Date | MISSING = MISSING
    end_date: Date | MISSING = MISSING
    gross_margin: Share | MISSING = MISSING
    status: CampaignStatus | MISSING = MISSING
    line_id: Identifier | MISSING | None = MISSING
    sales_unit_id: Identifier | MISSING | None = MISSING
    planned_uplift: Money | MISSING | None = MISSING
    target_segment: TargetSegment | MISSING | None = Field(
        default=MISSING,
        description="The customer segment the campaign aims at (null: none); applies at once, "
        "even to an approved campaign.",
        examples=["rfm:at_risk"],
    )


class StageIn(StrictBody):
    """A stage with a deadline."""

    name: Name
    deadline: UtcDatetime
    starts_at: UtcDatetime | None = None
    assignee: Identifier | None = None


class KpiTargetIn(StrictBody):
    """A KPI target of a campaign."""

    kpi: Annotated[Identifier, Field(json_schema_extra={"enum": list(KPI_NAMES)})]
    target: Measure
    direction: Direction | None = None
    weight: Weight = Decimal("1")
    tolerance: Tolerance = Decimal("0.05")


class StageOut(BaseModel):
    """A stage."""

    stage_id: str
    campaign_id: str
    name: str
    deadline: dt.datetime
    starts_at: dt.datetime | None
    assignee: str | None


class KpiTargetOut(BaseModel):
    """A KPI target."""

    target_id: str
    kpi: str
    target: Decimal
    direction: str
    weight: Decimal
    tolerance: Decimal


class ChangeRequestOut(BaseModel):
    """A requested change to an approved campaign's budget, line or dates."""

    request_id: str
    campaign_id: str
    changes: dict[str, str | None]
    requested_by: str
    requested_at: dt.datetime
    status: Literal["open", "accepted", "rejected", "superseded"] | str
    decided_by: str | None
    decided_at: dt.datetime | None
    reason: str | None


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


class CampaignOut(BaseModel):
    """A campaign with its stages and targets."""

    campaign_id: str
    plan_id: str
    name: str
    channel: str
    brand: str | None
    owner: str
    budget: Decimal
    currency: str
    start_date: dt.date
    end_date: dt.date
    gross_margin: Decimal
    status: str
    version: int
    line_id: str | None = None
    sales_unit_id: str | None = None
    planned_uplift: Decimal | None = None
    target_segment: str | None = Field(
        default=None, description="The customer segment the campaign aims at (null = none)."
    )
    change_requests: list[ChangeRequestOut] = []
    """Open change requests (at most one)."""
    stages: list[StageOut] = []
    kpi_targets: list[KpiTargetOut] = []


class PlanOut(BaseModel):
    """A plan with its campaigns."""

    plan_id: str
    name: str
    period_start: dt.date
    period_end: dt.date
    currency: str
    owner: str
    status: str
    approved_by: str | None
    budget: Decimal | None = None
    """The plan's cap (null = none)."""
    total_budget: Decimal
    """The sum of its campaigns' budgets."""
    campaigns: list[CampaignOut] = []


class ProposalOut(BaseModel):
    """A reallocation proposal from measurement: to a campaign or back to a budget line, by
    a plan's rule (``rule_id``; None: the settings' rule). ``status``: open, accepted,
    superseded (a newer proposal for the same giving campaign), applied (a rule in ``apply``
    mode) or failed (an applied move refused by planning's checks, ``note`` says why)."""

    proposal_id: str
    from_campaign_id: str
    to_campaign_id: str | None
    to_line_id: str | None
    amount: Decimal
    reason: str
    rule_id: str | None
    mode: Literal["propose", "apply"]
    proposed_at: dt.datetime
    status: Literal["open", "accepted", "superseded", "applied", "failed"]
    note: str | None


class Created(BaseModel):
    """The id of what was created."""

    id: str


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
