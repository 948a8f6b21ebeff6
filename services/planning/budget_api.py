"""Planning's budget routes: budget lines of a plan, the budget view (planned, committed,
actual and remaining money per line and month), and budget moves between campaigns or lines."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import MISSING, BaseModel, ConfigDict, Field

from services.planning import budget_store, budget_usecases, store
from services.planning.api import DB, Approver, Planner, Reader
from services.planning.schemas import Created, StrictBody
from services.planning.store import Store
from shared import budget
from shared.errors import DomainError, NotFound
from shared.events.envelope import Channel, Identifier, Money, Month, Name, Text

router = APIRouter(prefix="/api/v1", tags=["budget"])

Months = Annotated[
    dict[Month, Money],
    Field(
        max_length=1200,
        description="The line's amount by month (YYYY-MM → amount), adding up to the amount;"
        " without it the amount is phased evenly over the plan's months.",
        examples=[{"2027-01": "5000.00", "2027-02": "7000.00"}],
    ),
]


class LineIn(StrictBody):
    """A new budget line under the plan (no ``parent_id``) or under another of its lines."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "Brand A", "brand": "A", "amount": "60000.00"},
                {
                    "name": "Brand A at RetailCo",
                    "parent_id": "3f1c2b9e-3c1e-4a57-9a51-2d1c5f0e8b11",
                    "partner": "RetailCo",
                    "region": "North",
                    "amount": "25000.00",
                    "months": {"2027-03": "15000.00", "2027-04": "10000.00"},
                },
            ]
        }
    )

    name: Name
    amount: Money
    parent_id: Identifier | None = None
    brand: Name | None = None
    channel: Channel | None = None
    region: Name | None = None
    partner: Name | None = Field(
        default=None, description="A trade partner, distributor or retail chain."
    )
    months: Months | None = None


class LinePatch(StrictBody):
    """Changes to a budget line; absent fields stay as they are. ``name`` and ``amount`` may
    not be null; ``parent_id`` null moves the line to the top; ``months`` null phases the
    amount evenly."""

    name: Name | MISSING = MISSING
    amount: Money | MISSING = MISSING
    parent_id: Identifier | MISSING | None = MISSING
    brand: Name | MISSING | None = MISSING
    channel: Channel | MISSING | None = MISSING
    region: Name | MISSING | None = MISSING
    partner: Name | MISSING | None = MISSING
    months: Months | MISSING | None = MISSING


class LineOut(BaseModel):
    """A budget line as stored: ``months`` is its phasing (given or even)."""

    line_id: str
    plan_id: str
    parent_id: str | None
    name: str
    brand: str | None
    channel: str | None
    region: str | None
    partner: str | None
    amount: Decimal
    currency: str
    phased_evenly: bool
    months: dict[str, Decimal]
    version: int


class MonthOut(BaseModel):
    """A node's money in one month."""

    planned: Decimal | None
    committed: Decimal
    actual: Decimal
    remaining: Decimal | None


class NodeOut(BaseModel):
    """A node of the budget tree. ``planned``: its amount (the plan's cap at the root; null =
    no cap); ``committed``: budgets of approved campaigns drawing from it or beneath it;
    ``actual``: their spend; ``remaining``: planned − actual; ``taken``: what its sub-lines and
    campaigns hold; ``available``: what new lines or campaigns may still take."""

    line_id: str | None
    name: str
    brand: str | None = None
    channel: str | None = None
    region: str | None = None
    partner: str | None = None
    planned: Decimal | None
    committed: Decimal
    actual: Decimal
    remaining: Decimal | None
    taken: Decimal
    available: Decimal | None
    months: dict[str, MonthOut]
    campaign_ids: list[str]
    lines: list[NodeOut]


class BudgetOut(BaseModel):
    """A plan's budget: the plan as the root node with its lines beneath, in the plan's
    currency; ``unconverted`` is spend in currencies without a configured rate."""

    plan_id: str
    currency: str
    months: list[str]
    total: NodeOut
    unconverted: dict[str, Decimal]


def _line_out(line: budget.LineFacts, *, plan: store.Plan) -> LineOut:
    period = budget.Period(start=plan.period_start, end=plan.period_end)
    return LineOut(
        line_id=line.line_id,
        plan_id=line.plan_id,
        parent_id=line.parent_id,
        name=line.name,
        brand=line.brand,
        channel=line.channel,
        region=line.region,
        partner=line.partner,
        amount=line.amount,
        currency=plan.currency,
        phased_evenly=line.months is None,
        months=budget.phasing(line, period),
        version=line.version,
    )


def _load_line(db: Store, line_id: str) -> LineOut:
    with db.reading() as session:
        row = budget_store.get_line(session=session, line_id=line_id)
        if row is None:
            raise NotFound("budget line", line_id)
        plan = store.get_plan(session=session, plan_id=row.plan_id)
        assert plan is not None
        return _line_out(budget_store.line_facts(row), plan=plan)


def _node_out(node: budget.NodeView, *, plan_name: str) -> NodeOut:
    line = node.line
    return NodeOut(
        line_id=line.line_id if line else None,
        name=line.name if line else plan_name,
        brand=line.brand if line else None,
        channel=line.channel if line else None,
        region=line.region if line else None,
        partner=line.partner if line else None,
        planned=node.total.planned,
        committed=node.total.committed,
        actual=node.total.actual,
        remaining=node.total.remaining,
        taken=node.taken,
        available=node.available,
        months={
            month: MonthOut(
                planned=figures.planned,
                committed=figures.committed,
                actual=figures.actual,
                remaining=figures.remaining,
            )
            for month, figures in node.months.items()
        },
        campaign_ids=node.campaign_ids,
        lines=[_node_out(child, plan_name=plan_name) for child in node.children],
    )


@router.post(
    "/plans/{plan_id}/budget-lines", status_code=status.HTTP_201_CREATED, response_model=LineOut
)
def create_line(plan_id: Identifier, body: LineIn, db: DB, principal: Planner) -> LineOut:
    """Add a budget line; it must fit what its parent (or the plan's cap) has left — a 422
    names the field and gives the amount still available (``ctx.available``)."""
    line_id = budget_usecases.add_line(
        db=db, plan_id=plan_id, attributes=body.model_dump(), principal=principal
    )
    return _load_line(db, line_id)


@router.get("/plans/{plan_id}/budget-lines", response_model=list[LineOut])
def list_lines(plan_id: Identifier, db: DB, _: Reader) -> list[LineOut]:
    """The budget lines of a plan (flat, in creation order; ``parent_id`` gives the tree)."""
    with db.reading() as session:
        plan = store.get_plan(session=session, plan_id=plan_id)
        if plan is None:
            raise NotFound("plan", plan_id)
        return [
            _line_out(budget_store.line_facts(line), plan=plan)
            for line in budget_store.list_lines(session=session, plan_id=plan_id)
        ]


@router.get("/budget-lines/{line_id}", response_model=LineOut)
def get_line(line_id: Identifier, db: DB, _: Reader) -> LineOut:
    """A budget line."""
    return _load_line(db, line_id)


@router.patch("/budget-lines/{line_id}", response_model=LineOut)
def patch_line(line_id: Identifier, body: LinePatch, db: DB, principal: Planner) -> LineOut:
    """Change a budget line (of an approved plan: cmo, admin); it must still hold its
    sub-lines and campaigns and fit its parent."""
    budget_usecases.update_line(
        db=db, line_id=line_id, changes=body.model_dump(), principal=principal
    )
    return _load_line(db, line_id)


@router.delete(
    "/budget-lines/{line_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response
)
def delete_line(line_id: Identifier, db: DB, principal: Planner) -> Response:
    """Remove a budget line that has no sub-lines and no campaigns (409 otherwise)."""
    budget_usecases.remove_line(db=db, line_id=line_id, principal=principal)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class ReallocationIn(StrictBody):
    """A budget move between two campaigns, or two budget lines, of one plan. A campaign gives
    at most its unspent budget (budget − actual spend), a line its unspent money that no
    sub-line or campaign holds. Accepting a measurement proposal (``proposal_id``) takes its
    campaigns, amount and reason unless given; a different amount may be given, different
    campaigns may not."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "from_campaign_id": "3f1c2b9e-3c1e-4a57-9a51-2d1c5f0e8b11",
                    "to_campaign_id": "0b7e4c8a-1d2e-4f00-9a1b-2c3d4e5f6a7b",
                    "amount": "500.00",
                    "reason": "CPL twice the target",
                },
                {
                    "from_line_id": "3f1c2b9e-3c1e-4a57-9a51-2d1c5f0e8b11",
                    "to_line_id": "0b7e4c8a-1d2e-4f00-9a1b-2c3d4e5f6a7b",
                    "amount": "600.00",
                },
                {"proposal_id": "3f1c2b9e-3c1e-4a57-9a51-2d1c5f0e8b11"},
            ]
        }
    )

    from_campaign_id: Identifier | None = None
    to_campaign_id: Identifier | None = None
    from_line_id: Identifier | None = None
    to_line_id: Identifier | None = None
    amount: Money | None = None
    reason: Text | None = None
    proposal_id: Identifier | None = None


@router.post("/budget-reallocations", status_code=status.HTTP_201_CREATED, response_model=Created)
def reallocate(body: ReallocationIn, db: DB, principal: Approver, request: Request) -> Created:
    """Move budget between campaigns or budget lines of one plan (cmo, admin)."""
    fx = request.app.state.fx
    moves = body.model_dump()
    lines = {key: moves.pop(key) for key in ("from_line_id", "to_line_id")}
    if not any(lines.values()):
        reallocation_id = budget_usecases.reallocate_budget(
            db=db, principal=principal, fx=fx, **moves
        )
        return Created(id=reallocation_id)
    for name in ("from_campaign_id", "to_campaign_id", "proposal_id"):
        if moves[name] is not None:
            raise DomainError(
                "a move is between campaigns or between lines, not both",
                field=name,
                status_code=422,
            )
    for name, value in (*lines.items(), ("amount", moves["amount"])):
        if value is None:
            raise DomainError(
                f"{name} is required for a move between lines", field=name, status_code=422
            )
    reallocation_id = budget_usecases.move_between_lines(
        db=db,
        amount=moves["amount"],
        reason=moves["reason"],
        principal=principal,
        fx=fx,
        today=dt.datetime.now(dt.UTC).date(),
        **lines,
    )
    return Created(id=reallocation_id)


class ReallocationOut(BaseModel):
    """A budget move: between two campaigns, two lines, or from a campaign back to a line
    (``campaign_to_line``), who asked for it and why; ``source`` says whether it was made by
    hand, by accepting a measurement proposal, or by a rule in ``apply`` mode (``rule_id``)."""

    reallocation_id: str
    plan_id: str
    kind: Literal["campaigns", "lines", "campaign_to_line"]
    from_id: str
    to_id: str
    amount: Decimal
    reason: str | None
    requested_by: str
    source: Literal["manual", "proposal", "rule"]
    proposal_id: str | None
    rule_id: str | None
    at: dt.datetime


def _kind(row: store.BudgetReallocation) -> Literal["campaigns", "lines", "campaign_to_line"]:
    if row.from_line_id:
        return "lines"
    return "campaign_to_line" if row.to_line_id else "campaigns"


def _source(row: store.BudgetReallocation) -> Literal["manual", "proposal", "rule"]:
    if row.rule_id is not None or row.requested_by.startswith("rule:"):
        return "rule"
    return "proposal" if row.proposal_event_id else "manual"


@router.get("/plans/{plan_id}/reallocations", response_model=list[ReallocationOut])
def list_reallocations(plan_id: Identifier, db: DB, _: Reader) -> list[ReallocationOut]:
    """The budget moves of a plan, newest first."""
    with db.reading() as session:
        if store.get_plan(session=session, plan_id=plan_id) is None:
            raise NotFound("plan", plan_id)
        return [
            ReallocationOut(
                reallocation_id=row.id,
                plan_id=row.plan_id,
                kind=_kind(row),
                from_id=row.from_line_id or row.from_campaign_id,
                to_id=row.to_line_id or row.to_campaign_id,
                amount=row.amount,
                reason=row.reason,
                requested_by=row.requested_by,
                source=_source(row),
                proposal_id=row.proposal_event_id,
                rule_id=row.rule_id,
                at=row.created_at,
            )
            for row in store.list_reallocations(session=session, plan_id=plan_id)
        ]


@router.get("/plans/{plan_id}/budget", response_model=BudgetOut)
def get_budget(plan_id: Identifier, db: DB, _: Reader, request: Request) -> BudgetOut:
    """The plan's budget tree: each node with planned, committed, actual (from the spend
    stream) and remaining money, in total and per month."""
    report = budget_usecases.budget_report(db=db, plan_id=plan_id, fx=request.app.state.fx)
    return BudgetOut(
        plan_id=report.plan.id,
        currency=report.plan.currency,
        months=report.months,
        total=_node_out(report.root, plan_name=report.plan.name),
        unconverted=report.unconverted,
    )
