"""Events other internal systems publish: spend, ad metrics, leads, sales and tasks (SPEC §3)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from shared import topics
from shared.events.envelope import Channel, Count, Currency, EventData, Identifier, Money, Text

LeadStage = Literal["visitor", "lead", "mql", "sql", "sal", "opportunity", "customer", "lost"]
FUNNEL: tuple[str, ...] = ("visitor", "lead", "mql", "sql", "sal", "opportunity", "customer")
"""Funnel stages in order; ``lost`` ranks nowhere."""

TaskStatus = Literal["planned", "in_progress", "done", "blocked", "cancelled"]


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
    """An order was completed (order system)."""

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
