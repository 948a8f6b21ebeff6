"""Events the execution service publishes on ``mrm.execution.v1``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared import topics
from shared.events.envelope import Currency, EventData, Identifier, Money, Name, UtcDatetime


class _ExecutionEvent(EventData):
    topic = topics.EXECUTION
    key_field = "campaign_id"


class _StageEvent(_ExecutionEvent):
    stage_id: Identifier
    campaign_id: Identifier
    name: Name
    deadline: UtcDatetime
    assignee: Identifier | None = None


class StageDeadlineApproaching(_StageEvent):
    """A stage's deadline is near and the stage is not done."""

    event_type = "stage.deadline_approaching"

    hours_left: float = Field(ge=0, le=1e6, allow_inf_nan=False)


class StageOverdue(_StageEvent):
    """A stage's deadline passed and the stage is not done."""

    event_type = "stage.overdue"


class StageCompleted(_StageEvent):
    """A stage was completed."""

    event_type = "stage.completed"

    completed_at: UtcDatetime


class BudgetThresholdCrossed(_ExecutionEvent):
    """A campaign's spend reached a share of its budget (80 % and 100 %, once each)."""

    event_type = "budget.threshold_crossed"

    campaign_id: Identifier
    threshold_pct: Literal[80, 100]
    spend: Money
    budget: Money
    currency: Currency


class BudgetOverspendForecast(_ExecutionEvent):
    """At the current burn rate the campaign will spend more than its budget."""

    event_type = "budget.overspend_forecast"

    campaign_id: Identifier
    spend: Money
    budget: Money
    forecast_at_completion: Money
    currency: Currency


EXECUTION_EVENTS: tuple[type[EventData], ...] = (
    StageDeadlineApproaching,
    StageOverdue,
    StageCompleted,
    BudgetThresholdCrossed,
    BudgetOverspendForecast,
)
