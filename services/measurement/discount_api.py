"""Measurement's discount routes: sales given more than their applicable maximum rate, and the
discount analytics of a plan (by reason, partner and campaign; the share over the limits)."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter
from pydantic import BaseModel

from services.measurement import discount_watch, discounts
from services.measurement.api import From, Reader, Store, To
from services.measurement.warehouse import Warehouse
from services.measurement.warehouse import discounts as tables
from shared.errors import DomainError, NotFound
from shared.events.envelope import Identifier

router = APIRouter(prefix="/api/v1/discounts", tags=["discounts"])


class ExceptionOut(BaseModel):
    """A sale given a higher discount rate than the maximum that applies to it."""

    order_id: str
    campaign_id: str
    amount: Decimal
    discount_amount: Decimal
    rate: Decimal
    max_discount_rate: Decimal
    limit_scope_kind: str
    limit_scope_id: str
    amount_over: Decimal
    currency: str
    discount_reason: str | None
    partner_id: str | None


class AnalyticsOut(BaseModel):
    """A plan's discounts in a period, in its currency: totals by reason, partner and campaign
    ('' = not given), and what was given beyond the maximum rates with its share (null: no
    discount given)."""

    plan_id: str
    currency: str
    total: Decimal
    over_limit: Decimal
    over_limit_share: Decimal | None
    by_reason: dict[str, Decimal]
    by_partner: dict[str, Decimal]
    by_campaign: dict[str, Decimal]


async def _limits(db: Warehouse, plan_id: str) -> tables.PlanLimits:
    return await db.run(tables.plan_limits, plan_id=plan_id)  # type: ignore[no-any-return]


@router.get("/exceptions", response_model=list[ExceptionOut])
async def list_exceptions(
    db: Store,
    _: Reader,
    start: From = None,
    end: To = None,
    campaign_id: Identifier | None = None,
    line_id: Identifier | None = None,
) -> list[ExceptionOut]:
    """Sales of a campaign, or of the campaigns under a budget line, over their maximum rate."""
    if (campaign_id is None) == (line_id is None):
        raise DomainError(
            "give exactly one of campaign_id and line_id",
            field="campaign_id",
            status_code=422,
            location="query",
        )
    plan_id = await db.run(tables.plan_of, campaign_id=campaign_id, line_id=line_id)
    if plan_id is None:
        raise NotFound("campaign" if campaign_id else "budget line", campaign_id or line_id or "")
    limits = await _limits(db, plan_id)
    chains = discount_watch.chains_of(limits)
    members = [
        cid
        for cid, chain in chains.items()
        if (("campaign", campaign_id) if campaign_id else ("line", line_id)) in chain
    ]
    limit_of = discount_watch.limit_of_campaigns(limits)
    sales = await db.run(
        tables.discounted_sales, campaign_ids=sorted(members), start=start, end=end
    )
    out = []
    for sale in sales:
        excess = discounts.exceeded(sale, limit=limit_of.get(sale.campaign_id))
        if excess is None:
            continue
        out.append(
            ExceptionOut(
                order_id=sale.order_id,
                campaign_id=sale.campaign_id,
                amount=sale.amount,
                discount_amount=sale.discount_amount,
                rate=excess.rate,
                max_discount_rate=excess.max_discount_rate,
                limit_scope_kind=excess.scope[0],
                limit_scope_id=excess.scope[1],
                amount_over=excess.amount_over,
                currency=sale.currency,
                discount_reason=sale.reason or None,
                partner_id=sale.partner_id or None,
            )
        )
    return out


@router.get("/analytics", response_model=AnalyticsOut)
async def discount_analytics(
    plan_id: Identifier, db: Store, _: Reader, start: From = None, end: To = None
) -> AnalyticsOut:
    """A plan's discounts by reason, partner and campaign, and the share given over limits."""
    limits = await _limits(db, plan_id)
    if not limits.line_of:
        raise NotFound("plan", plan_id)
    sales = await db.run(
        tables.discounted_sales, campaign_ids=sorted(limits.line_of), start=start, end=end
    )
    result = discounts.analytics(sales, limit_of=discount_watch.limit_of_campaigns(limits))
    return AnalyticsOut(plan_id=plan_id, currency=limits.currency, **vars(result))
