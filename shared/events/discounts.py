"""Discount events measurement publishes on ``mrm.kpi.v1``: promo-fund thresholds and sales
given more discount than their applicable maximum rate."""

from __future__ import annotations

from typing import Literal

from shared import topics
from shared.events.envelope import Currency, EventData, Identifier, Money, Share
from shared.events.planning import DiscountScope


class DiscountThresholdCrossed(EventData):
    """The discounts given under a scope reached 80 % or 100 % of its promo fund; announced
    once per crossing (again only after the use fell below the threshold and rose anew)."""

    topic = topics.KPI
    event_type = "discount.threshold_crossed"
    key_field = "plan_id"

    scope_kind: DiscountScope
    scope_id: Identifier
    plan_id: Identifier
    campaign_id: Identifier | None = None
    """The campaign, when the scope is one."""
    threshold: Literal[80, 100]
    used: Money
    promo_fund: Money
    currency: Currency


class DiscountLimitExceeded(EventData):
    """A sale of a campaign was given a higher discount rate than the maximum that applies to
    it (the campaign's, else its line's, the nearest ancestor line's, the plan's)."""

    topic = topics.KPI
    event_type = "discount.limit_exceeded"
    key_field = "campaign_id"

    order_id: Identifier
    campaign_id: Identifier
    plan_id: Identifier
    scope_kind: DiscountScope
    """Whose limit applied."""
    scope_id: Identifier
    rate: Share
    max_discount_rate: Share
    discount_amount: Money
    amount_over: Money
    """The discount given beyond the maximum rate."""
    currency: Currency


DISCOUNT_EVENTS: tuple[type[EventData], ...] = (DiscountThresholdCrossed, DiscountLimitExceeded)
