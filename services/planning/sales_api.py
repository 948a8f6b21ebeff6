"""Planning's sales-target routes: the unit tree, targets per month or quarter set top-down or
split over a unit's children (evenly, by shares, by past sales), bottom-up proposals by a
unit's owner, and the tree with each unit's sales plan (baseline + planned uplift)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from services.planning import sales, sales_usecases
from services.planning import sales_store as rows
from services.planning.api import DB, Approver, Reader
from services.planning.sales_plan import SalesPlan
from services.planning.schemas import StrictBody
from shared.auth import WRITERS, Principal, require
from shared.errors import NotFound
from shared.events.envelope import Currency, Identifier, Money, Name, Share, Text
from shared.events.planning import SalesUnitKind

router = APIRouter(prefix="/api/v1", tags=["sales targets"])
Writer = Annotated[Principal, Depends(require(*WRITERS))]
Period = Annotated[
    str,
    Field(
        pattern=r"^\d{4}-(0[1-9]|1[0-2]|Q[1-4])$",
        description="A month (2027-03) or a quarter (2027-Q1).",
        examples=["2027-Q1"],
    ),
]
Reason = Annotated[Text, Field(min_length=1)]


class UnitIn(StrictBody):
    """A sales unit: the company at the top, regions or divisions under it, sales reps and trade
    partners beneath those. ``owner`` proposes the unit's figures and decides its children's;
    ``code`` is the id sale events carry for it (partner_id, rep_id or region)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "Acme", "kind": "company", "owner": "carla"},
                {
                    "name": "Rita",
                    "kind": "rep",
                    "owner": "rita",
                    "parent_id": "3f1c2b9e-3c1e-4a57-9a51-2d1c5f0e8b11",
                    "code": "rep-7",
                },
            ]
        }
    )

    name: Name
    kind: SalesUnitKind
    owner: Identifier
    parent_id: Identifier | None = None
    code: Identifier | None = None


class UnitOut(BaseModel):
    """A sales unit."""

    unit_id: str
    name: str
    kind: str
    owner: str
    parent_id: str | None
    code: str | None


class TargetIn(StrictBody):
    """A unit's sales target for a period, for one brand or (no brand) all of them."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "unit_id": "3f1c2b9e-3c1e-4a57-9a51-2d1c5f0e8b11",
                    "period": "2027-Q1",
                    "amount": "300000.00",
                }
            ]
        }
    )

    unit_id: Identifier
    period: Period
    brand: Name | None = None
    amount: Money
    currency: Currency | None = None


class SplitIn(StrictBody):
    """How to distribute a target over the unit's children: evenly, by shares (unit id →
    share, adding up to 1), or in proportion to each child's sales in ``reference_period``
    (of the target's brand, if it has one; converted to the target's currency)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"method": "even"},
                {"method": "shares", "shares": {"unit-north": "0.6", "unit-south": "0.4"}},
                {"method": "reference", "reference_period": "2026-Q1"},
            ]
        }
    )

    method: Literal["even", "shares", "reference"]
    shares: dict[Identifier, Share] | None = None
    reference_period: Period | None = None


class ProposalIn(StrictBody):
    """A unit owner's figure for its own target, with a comment."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"amount": "80000.00", "comment": "key account lost"}]}
    )

    amount: Money
    comment: Text | None = None


class ProposalRejectionIn(StrictBody):
    """Why a proposal is rejected."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"reason": "the region needs the full figure"}]}
    )

    reason: Reason


class TargetOut(BaseModel):
    """A unit's target."""

    target_id: str
    unit_id: str
    period: str
    brand: str | None
    amount: Decimal
    currency: str
    version: int


class NodeOut(BaseModel):
    """A unit with its target, the sum of its children's targets and the gap (own − children;
    negative when the children promise more), and its sales plan in ``currency`` (its target's,
    else the platform's): ``baseline`` (its sales in the same period one year earlier; null
    when planning holds no sales of that period), ``planned_uplift`` (the uplift of the
    campaigns planned against it or a unit beneath it, phased by their days into the period)
    and ``sales_plan`` (baseline + planned uplift). Amounts in a currency without a rate are
    listed under ``unconverted``, not added."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "unit": {
                        "unit_id": "3f1c2b9e-3c1e-4a57-9a51-2d1c5f0e8b11",
                        "name": "North",
                        "kind": "region",
                        "owner": "nina",
                        "parent_id": "0b7e4c8a-1d2e-4f00-9a1b-2c3d4e5f6a7b",
                        "code": "N",
                    },
                    "target": None,
                    "children_sum": None,
                    "gap": None,
                    "currency": "EUR",
                    "baseline": "120000.00",
                    "planned_uplift": "15000.00",
                    "sales_plan": "135000.00",
                    "unconverted": {},
                    "children": [],
                }
            ]
        }
    )

    unit: UnitOut
    target: TargetOut | None
    children_sum: Decimal | None
    gap: Decimal | None
    currency: str
    baseline: Decimal | None
    planned_uplift: Decimal
    sales_plan: Decimal | None
    unconverted: dict[str, Decimal]
    children: list[NodeOut]


class TreeOut(BaseModel):
    """The target tree of one period and brand."""

    period: str
    brand: str | None
    roots: list[NodeOut]


class ProposalOut(BaseModel):
    """A proposed figure and what became of it."""

    proposal_id: str
    target_id: str
    amount: Decimal
    comment: str | None
    proposed_by: str
    status: str
    decided_by: str | None
    reason: str | None


def _unit_out(unit: sales.UnitFacts) -> UnitOut:
    return UnitOut(
        unit_id=unit.unit_id,
        name=unit.name,
        kind=unit.kind,
        owner=unit.owner,
        parent_id=unit.parent_id,
        code=unit.code,
    )


def _target_out(target: sales.TargetFacts) -> TargetOut:
    return TargetOut(
        target_id=target.target_id,
        unit_id=target.unit_id,
        period=target.period,
        brand=target.brand or None,
        amount=target.amount,
        currency=target.currency,
        version=target.version,
    )


def _node_out(node: sales.TargetNode, plans: dict[str, SalesPlan]) -> NodeOut:
    plan = plans[node.unit.unit_id]
    return NodeOut(
        unit=_unit_out(node.unit),
        target=_target_out(node.target) if node.target else None,
        children_sum=node.children_sum,
        gap=node.gap,
        currency=plan.currency,
        baseline=plan.baseline,
        planned_uplift=plan.planned_uplift,
        sales_plan=plan.sales_plan,
        unconverted=plan.unconverted,
        children=[_node_out(child, plans) for child in node.children],
    )


def _load_target(db: DB, target_id: str) -> TargetOut:
    with db.reading() as session:
        row = session.get(rows.SalesTarget, target_id)
        if row is None:
            raise NotFound("sales target", target_id)
        return _target_out(rows.target_facts(row))


@router.post("/sales-units", status_code=status.HTTP_201_CREATED, response_model=UnitOut)
def create_unit(body: UnitIn, db: DB, principal: Approver) -> UnitOut:
    """Add a unit to the sales-target tree (cmo, admin)."""
    unit_id = sales_usecases.add_unit(db=db, attributes=body.model_dump(), principal=principal)
    with db.reading() as session:
        return _unit_out(rows.all_units(session=session)[unit_id])


@router.get("/sales-units", response_model=list[UnitOut])
def list_units(db: DB, _: Reader) -> list[UnitOut]:
    """Every sales unit (``parent_id`` gives the tree)."""
    with db.reading() as session:
        return [_unit_out(unit) for unit in rows.all_units(session=session).values()]


@router.post("/sales-targets", status_code=status.HTTP_201_CREATED, response_model=TargetOut)
def set_target(body: TargetIn, db: DB, principal: Writer, request: Request) -> TargetOut:
    """Set a unit's target for a period (cmo, admin, or the owner of the unit above it)."""
    target_id = sales_usecases.set_target(
        db=db,
        unit_id=body.unit_id,
        period=body.period,
        brand=body.brand,
        amount=body.amount,
        currency=body.currency or request.app.state.settings.currency,
        principal=principal,
    )
    return _load_target(db, target_id)


@router.get("/sales-targets", response_model=TreeOut)
def target_tree(
    db: DB,
    _: Reader,
    request: Request,
    period: Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2]|Q[1-4])$")],
    brand: Annotated[Name | None, Query()] = None,
) -> TreeOut:
    """The unit tree with each unit's target for ``period`` (and ``brand``), the sum of its
    children's targets and the gap, and its sales plan: baseline, planned uplift and both."""
    nodes, plans = sales_usecases.target_tree(
        db=db, period=period, brand=brand, fx=request.app.state.fx
    )
    return TreeOut(period=period, brand=brand, roots=[_node_out(node, plans) for node in nodes])


@router.post("/sales-targets/{target_id}/split", response_model=list[TargetOut])
def split_target(
    target_id: Identifier, body: SplitIn, db: DB, principal: Writer, request: Request
) -> list[TargetOut]:
    """Distribute a target over its unit's children (cmo, admin or the unit's owner): evenly,
    by shares, or by their sales in a reference period."""
    ids = sales_usecases.split_target(
        db=db,
        target_id=target_id,
        method=body.method,
        shares=body.shares,
        reference_period=body.reference_period,
        fx=request.app.state.fx,
        principal=principal,
    )
    return [_load_target(db, target_id) for target_id in ids]


@router.post(
    "/sales-targets/{target_id}/proposals",
    status_code=status.HTTP_201_CREATED,
    response_model=ProposalOut,
)
def propose(target_id: Identifier, body: ProposalIn, db: DB, principal: Writer) -> ProposalOut:
    """The unit's owner proposes another figure for its own target (bottom-up)."""
    proposal_id = sales_usecases.propose(
        db=db, target_id=target_id, amount=body.amount, comment=body.comment, principal=principal
    )
    return _load_proposal(db, proposal_id)


@router.get("/sales-targets/{target_id}/proposals", response_model=list[ProposalOut])
def list_proposals(target_id: Identifier, db: DB, _: Reader) -> list[ProposalOut]:
    """The proposals made for a target, newest first."""
    _load_target(db, target_id)
    with db.reading() as session:
        return [
            _proposal_out(row) for row in rows.proposals_of(session=session, target_id=target_id)
        ]


def _proposal_out(row: rows.TargetProposal) -> ProposalOut:
    return ProposalOut(
        proposal_id=row.id,
        target_id=row.target_id,
        amount=row.amount,
        comment=row.comment,
        proposed_by=row.proposed_by,
        status=row.status,
        decided_by=row.decided_by,
        reason=row.reason,
    )


def _load_proposal(db: DB, proposal_id: str) -> ProposalOut:
    with db.reading() as session:
        row = session.get(rows.TargetProposal, proposal_id)
        assert row is not None
        return _proposal_out(row)


@router.post("/sales-target-proposals/{proposal_id}/accept", response_model=ProposalOut)
def accept(proposal_id: Identifier, db: DB, principal: Writer) -> ProposalOut:
    """Accept a proposal (the parent unit's owner, cmo, admin): the target takes its figure."""
    sales_usecases.decide(
        db=db, proposal_id=proposal_id, accept=True, reason=None, principal=principal
    )
    return _load_proposal(db, proposal_id)


@router.post("/sales-target-proposals/{proposal_id}/reject", response_model=ProposalOut)
def reject(
    proposal_id: Identifier, body: ProposalRejectionIn, db: DB, principal: Writer
) -> ProposalOut:
    """Reject a proposal with a reason (the parent unit's owner, cmo, admin)."""
    sales_usecases.decide(
        db=db, proposal_id=proposal_id, accept=False, reason=body.reason, principal=principal
    )
    return _load_proposal(db, proposal_id)
