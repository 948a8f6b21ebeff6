"""Use cases of discount limits: read and set the limits of a plan, budget line or campaign.
Setting runs in one unit of work: the limits, an audit entry and ``discount_limit.set``."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.orm import Session

from services.planning import budget_store, discount_store, discounts, store
from services.planning.discounts import LimitFacts, ScopeKind
from services.planning.store import Store
from shared.auth import Principal
from shared.errors import NotFound
from shared.events.planning import DiscountLimitSet


def _scope(session: Session, scope_kind: ScopeKind, scope_id: str) -> store.Plan:
    """The plan a scope belongs to (404 if the scope is unknown)."""
    plan_id: str | None = scope_id
    if scope_kind == "campaign":
        campaign = store.get_campaign(session=session, campaign_id=scope_id)
        plan_id = campaign.plan_id if campaign else None
    elif scope_kind == "line":
        line = budget_store.get_line(session=session, line_id=scope_id)
        plan_id = line.plan_id if line else None
    plan = store.get_plan(session=session, plan_id=plan_id) if plan_id else None
    if plan is None:
        raise NotFound({"line": "budget line"}.get(scope_kind, scope_kind), scope_id)
    return plan


def _current(
    session: Session, scope_kind: ScopeKind, scope_id: str
) -> tuple[store.Plan, LimitFacts]:
    plan = _scope(session, scope_kind, scope_id)
    return plan, discount_store.get_limit(
        session=session,
        scope_kind=scope_kind,
        scope_id=scope_id,
        plan_id=plan.id,
        currency=plan.currency,
    )


def get_limit(*, db: Store, scope_kind: ScopeKind, scope_id: str) -> LimitFacts:
    """A scope's discount limits (version 0 where none were set)."""
    with db.reading() as session:
        return _current(session, scope_kind, scope_id)[1]


def set_limit(
    *,
    db: Store,
    scope_kind: ScopeKind,
    scope_id: str,
    promo_fund: Decimal | None,
    max_discount_rate: Decimal | None,
    principal: Principal,
) -> LimitFacts:
    """Replace a scope's promo fund and maximum discount rate (of an approved plan: cmo,
    admin); returns the limits as stored."""
    with db.unit_of_work() as uow:
        plan, before = _current(uow.session, scope_kind, scope_id)
        discounts.check_role(plan_status=plan.status, role=principal.role)
        after, events = discounts.set_limit(
            before, promo_fund=promo_fund, max_discount_rate=max_discount_rate
        )
        if not events:
            return after
        discount_store.save_limit(session=uow.session, facts=after)
        uow.audit(
            entity_type="discount_limit",
            entity_id=scope_id,
            plan_id=plan.id,
            action="set",
            actor=principal,
            before=before if before.version else None,
            after=after,
        )
        uow.publish(list(events))
    return after


def limit_events(*, session: Session, plan_ids: list[str]) -> list[DiscountLimitSet]:
    """The ``discount_limit.set`` events of every limit of these plans (for a republish)."""
    return [
        discounts.limit_event(facts)
        for plan_id in plan_ids
        for facts in discount_store.limits_of(session=session, plan_id=plan_id)
    ]
