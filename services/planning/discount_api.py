"""Planning's discount-limit routes: the promo fund and maximum discount rate of a plan, a
budget line or a campaign (read by every role, set by planners; on an approved plan by cmo or
admin)."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from services.planning import discount_usecases
from services.planning.api import DB, Planner, Reader
from services.planning.discounts import LimitFacts, ScopeKind
from services.planning.schemas import StrictBody
from shared.events.envelope import Identifier, Money, Share

router = APIRouter(prefix="/api/v1", tags=["discounts"])


class LimitIn(StrictBody):
    """A scope's discount limits, replaced as a whole (a field left out or null: none)."""

    promo_fund: Money | None = Field(
        default=None, description="The total discount the scope's sales may be given."
    )
    max_discount_rate: Share | None = Field(
        default=None,
        description="The highest discount rate of one sale, 0..1: discount_amount / "
        "(amount + discount_amount).",
    )


class LimitOut(BaseModel):
    """A scope's discount limits, in the plan's currency (version 0: never set)."""

    scope_kind: ScopeKind
    scope_id: str
    plan_id: str
    promo_fund: Decimal | None
    max_discount_rate: Decimal | None
    currency: str
    version: int


def _out(facts: LimitFacts) -> LimitOut:
    return LimitOut(**vars(facts))


def _put(db: DB, kind: ScopeKind, scope_id: str, body: LimitIn, principal: Planner) -> LimitOut:
    return _out(
        discount_usecases.set_limit(
            db=db,
            scope_kind=kind,
            scope_id=scope_id,
            promo_fund=body.promo_fund,
            max_discount_rate=body.max_discount_rate,
            principal=principal,
        )
    )


@router.get("/plans/{plan_id}/discount-limit", response_model=LimitOut)
def get_plan_limit(plan_id: Identifier, db: DB, _: Reader) -> LimitOut:
    """The plan's own discount limits (the last resort of its campaigns)."""
    return _out(discount_usecases.get_limit(db=db, scope_kind="plan", scope_id=plan_id))


@router.put("/plans/{plan_id}/discount-limit", response_model=LimitOut)
def put_plan_limit(plan_id: Identifier, body: LimitIn, db: DB, principal: Planner) -> LimitOut:
    """Set the plan's discount limits."""
    return _put(db, "plan", plan_id, body, principal)


@router.get("/budget-lines/{line_id}/discount-limit", response_model=LimitOut)
def get_line_limit(line_id: Identifier, db: DB, _: Reader) -> LimitOut:
    """A budget line's own discount limits."""
    return _out(discount_usecases.get_limit(db=db, scope_kind="line", scope_id=line_id))


@router.put("/budget-lines/{line_id}/discount-limit", response_model=LimitOut)
def put_line_limit(line_id: Identifier, body: LimitIn, db: DB, principal: Planner) -> LimitOut:
    """Set a budget line's discount limits (they apply to the campaigns beneath it that have
    none of their own)."""
    return _put(db, "line", line_id, body, principal)


@router.get("/campaigns/{campaign_id}/discount-limit", response_model=LimitOut)
def get_campaign_limit(campaign_id: Identifier, db: DB, _: Reader) -> LimitOut:
    """A campaign's own discount limits."""
    return _out(discount_usecases.get_limit(db=db, scope_kind="campaign", scope_id=campaign_id))


@router.put("/campaigns/{campaign_id}/discount-limit", response_model=LimitOut)
def put_campaign_limit(
    campaign_id: Identifier, body: LimitIn, db: DB, principal: Planner
) -> LimitOut:
    """Set a campaign's discount limits."""
    return _put(db, "campaign", campaign_id, body, principal)
