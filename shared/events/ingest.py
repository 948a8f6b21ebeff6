"""Events other internal systems publish: spend, ad metrics, leads, sales and tasks (SPEC §3)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from shared import topics
from shared.events.envelope import (
    Channel,
    Count,
    Currency,
    EventData,
    Identifier,
    Money,
    Name,
    ShortText,
    Text,
)

LeadStage = Literal["visitor", "lead", "mql", "sql", "sal", "opportunity", "customer", "lost"]
FUNNEL: tuple[str, ...] = ("visitor", "lead", "mql", "sql", "sal", "opportunity", "customer")
"""Funnel stages in order; ``lost`` ranks nowhere."""

TaskStatus = Literal["planned", "in_progress", "done", "blocked", "cancelled"]

SaleKind = Literal["sell_in", "sell_out"]
"""``sell_in``: a sale to a trade partner; ``sell_out``: the partner's sale to a consumer."""


class SpendRecorded(EventData):
    """Money spent on a campaign in a channel."""

    event_type = "spend.recorded"
    topic = topics.SPEND
    key_field = "campaign_id"

    campaign_id: Identifier
    channel: Channel
    amount: Money
    currency: Currency


class AdMetricsReported(EventData):
    """Impressions and clicks an ad platform reports for a campaign."""

    event_type = "ad.metrics_reported"
    topic = topics.AD_METRICS
    key_field = "campaign_id"

    campaign_id: Identifier
    channel: Channel
    impressions: Count
    clicks: Count

    @field_validator("clicks")
    @classmethod
    def _clicks_within_impressions(cls, clicks: int, info: ValidationInfo) -> int:
        impressions = info.data.get("impressions")
        if impressions is not None and clicks > impressions:
            raise ValueError(f"must not exceed impressions ({impressions})")
        return clicks


class LeadStageChanged(EventData):
    """A lead moved to a funnel stage (CRM / web analytics)."""

    event_type = "lead.stage_changed"
    topic = topics.LEADS
    key_field = "lead_id"

    lead_id: Identifier
    campaign_id: Identifier | None = None
    channel: Channel
    stage: LeadStage
    customer_id: Identifier | None = Field(default=None, validate_default=True)
    expected_value: Money | None = None

    @field_validator("customer_id")
    @classmethod
    def _customer_has_id(cls, customer_id: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("stage") == "customer" and customer_id is None:
            raise ValueError("is required when stage is 'customer'")
        return customer_id


class SaleCompleted(EventData):
    """An order was completed (order system).

    Besides the campaign it is attributed to, a sale may name the sales units it counts for
    (trade partner, sales rep, region, product, brand, outlet) and how its price was made (list
    price, discount reason, sell-in or sell-out); all of these are optional.
    """

    event_type = "sale.completed"
    topic = topics.SALES
    key_field = "customer_id"

    order_id: Identifier
    customer_id: Identifier
    campaign_id: Identifier | None = None
    channel: Channel | None = None
    amount: Money
    discount_amount: Money = Field(default=Decimal("0"))
    currency: Currency
    partner_id: Identifier | None = Field(
        default=None, description="The trade partner, distributor or retail chain of the sale."
    )
    rep_id: Identifier | None = Field(default=None, description="The sales rep it counts for.")
    region: Name | None = Field(default=None, description="The sales region.")
    product_id: Identifier | None = Field(default=None, description="The product sold.")
    brand: Name | None = Field(default=None, description="The brand of the product sold.")
    list_price: Money | None = Field(
        default=None,
        description="The undiscounted amount of the order (at least ``amount``), in ``currency``.",
    )
    discount_reason: ShortText | None = Field(
        default=None, description="Why a discount was given (a promo, a loyalty scheme ...)."
    )
    sale_kind: SaleKind | None = Field(
        default=None,
        description="``sell_in`` (to a trade partner) or ``sell_out`` (partner to consumer).",
    )
    outlet: Name | None = Field(
        default=None, description="The store or point of sale where it was sold."
    )

    @field_validator("list_price")
    @classmethod
    def _list_price_covers_amount(
        cls, list_price: Decimal | None, info: ValidationInfo
    ) -> Decimal | None:
        amount = info.data.get("amount")
        if list_price is not None and amount is not None and list_price < amount:
            raise ValueError(f"must not be less than amount ({amount})")
        return list_price


class TaskStatusChanged(EventData):
    """A task tracker changed the status of a campaign stage."""

    event_type = "task.status_changed"
    topic = topics.TASKS
    key_field = "campaign_id"

    campaign_id: Identifier
    stage_id: Identifier
    status: TaskStatus
    assignee: Identifier | None = None
    comment: Text | None = None


INGEST_EVENTS: tuple[type[EventData], ...] = (
    SpendRecorded,
    AdMetricsReported,
    LeadStageChanged,
    SaleCompleted,
    TaskStatusChanged,
)
