"""Discount checks of a plan, as the monitor runs them: promo-fund thresholds per campaign,
budget line and plan, and sales over their applicable maximum rate.

``plan_events`` is pure: from a plan's limits, the discount used per campaign, its discounted
sales and the stored alert states, it returns the events to publish, each with an id derived
from its cause, and the alert states that change. The states live in ``alert_state`` under
the subject ``discount:<plan_id>``: a threshold of a scope under ``fund:<kind>:<id>:<80|100>``
(on once announced, off again when the use fell below it, e.g. after the fund was raised),
an announced sale under ``sale:<event_id>`` (never off: one ``discount.limit_exceeded`` per
sale). Event ids: the threshold's key and the version of the state it leaves; the sale's key.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal

from services.measurement import discounts
from services.measurement.discounts import Sale, Scope
from services.measurement.domain import cause_event_id
from services.measurement.warehouse.alerts import AlertState
from services.measurement.warehouse.discounts import PlanLimits
from shared.events import EventData
from shared.events.discounts import DiscountLimitExceeded, DiscountThresholdCrossed

Outgoing = list[tuple[EventData, uuid.UUID]]


def subject(plan_id: str) -> str:
    """The alert-state subject of a plan's discount checks."""
    return f"discount:{plan_id}"


def chains_of(limits: PlanLimits) -> dict[str, list[Scope]]:
    """Each campaign's scopes, nearest first (campaign, lines up the tree, plan)."""
    return {
        campaign_id: discounts.scope_chain(
            campaign_id=campaign_id,
            plan_id=limits.plan_id,
            line_id=line_id,
            parents=limits.parents,
        )
        for campaign_id, line_id in limits.line_of.items()
    }


def plan_events(
    limits: PlanLimits,
    *,
    used: Mapping[str, Decimal],
    sales: Sequence[Sale],
    stored: Mapping[str, AlertState],
) -> tuple[Outgoing, dict[str, bool]]:
    """The threshold and exceeded-sale events a plan's state calls for, and the state changes."""
    chains = chains_of(limits)
    outgoing: Outgoing = []
    changes: dict[str, bool] = {}
    use = discounts.fund_use(used_by_campaign=used, chains=chains)
    for (kind, scope_id), limit in sorted(limits.limits.items()):
        if limit.promo_fund is None:
            continue
        prefix = f"fund:{kind}:{scope_id}:"
        used_here = use.get((kind, scope_id), discounts.ZERO)
        announced = {
            int(key[len(prefix) :]) for key, s in stored.items() if s.on and key.startswith(prefix)
        }
        reached = discounts.thresholds_reached(used=used_here, promo_fund=limit.promo_fund)
        for threshold, on in discounts.threshold_changes(
            reached=reached, announced=announced
        ).items():
            key = f"{prefix}{threshold}"
            changes[key] = on
            if not on:
                continue
            since = stored[key].version if key in stored else 0
            event = DiscountThresholdCrossed(
                scope_kind=kind,  # type: ignore[arg-type]
                scope_id=scope_id,
                plan_id=limits.plan_id,
                campaign_id=scope_id if kind == "campaign" else None,
                threshold=threshold,  # type: ignore[arg-type]
                used=used_here,
                promo_fund=limit.promo_fund,
                currency=limits.currencies.get((kind, scope_id)) or limits.currency,
            )
            outgoing.append((event, cause_event_id(limits.plan_id, key, "crossed", since)))
    for sale in sales:
        key = f"sale:{sale.event_id}"
        chain = chains.get(sale.campaign_id)
        if key in stored or chain is None:
            continue
        excess = discounts.exceeded(sale, limit=discounts.applicable_rate(chain, limits.limits))
        if excess is None:
            continue
        changes[key] = True
        over = DiscountLimitExceeded(
            order_id=sale.order_id,
            campaign_id=sale.campaign_id,
            plan_id=limits.plan_id,
            scope_kind=excess.scope[0],  # type: ignore[arg-type]
            scope_id=excess.scope[1],
            rate=excess.rate,
            max_discount_rate=excess.max_discount_rate,
            discount_amount=sale.discount_amount,
            amount_over=excess.amount_over,
            currency=sale.currency,
        )
        outgoing.append((over, cause_event_id(limits.plan_id, key, "exceeded")))
    return outgoing, changes


def limit_of_campaigns(limits: PlanLimits) -> dict[str, tuple[Scope, Decimal] | None]:
    """The maximum rate that applies to each campaign's sales, with its scope (None: none)."""
    return {
        campaign_id: discounts.applicable_rate(chain, limits.limits)
        for campaign_id, chain in chains_of(limits).items()
    }
