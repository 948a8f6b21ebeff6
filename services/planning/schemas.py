"""Planning's HTTP request and answer models (SPEC §5): what ``api`` and the other route
modules take and give; strict bodies refuse unknown fields."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import MISSING, BaseModel, ConfigDict, Field

from shared.events.envelope import (
    Channel,
    Currency,
    Date,
    Identifier,
    Measure,
    Money,
    Name,
    Share,
    UtcDatetime,
    Weight,
)
from shared.events.planning import CampaignStatus
from shared.kpis import KPI_NAMES, Direction
from shared.segments import TargetSegment

Tolerance = Annotated[Share, Field(lt=1)]


class StrictBody(BaseModel):
    """A request body: unknown fields are refused (422)."""

    model_config = ConfigDict(extra="forbid")


class PlanIn(StrictBody):
    """A new plan."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "FY2027",
                    "period_start": "2027-01-01",
                    "period_end": "2027-12-31",
                    "budget": "100000.00",
                }
            ]
        }
    )

    name: Name
    period_start: Date
    period_end: Date
    currency: Currency | None = None
    owner: Identifier | None = None
    budget: Money | None = None
    """The plan's total budget: the cap of its budget lines and campaigns (none = no cap)."""


class PlanPatch(StrictBody):
    """Changes to a plan; absent fields stay as they are. ``budget`` null removes the cap."""

    name: Name | MISSING = MISSING
    owner: Identifier | MISSING = MISSING
    budget: Money | MISSING | None = MISSING


class CampaignIn(StrictBody):
    """A new campaign of a plan."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Spring search",
                    "channel": "search",
                    "owner": "ann",
                    "budget": "20000.00",
                    "start_date": "2027-03-01",
                    "end_date": "2027-04-30",
                    "gross_margin": "0.4",
                    "line_id": "3f1c2b9e-3c1e-4a57-9a51-2d1c5f0e8b11",
                    "sales_unit_id": "0b7e4c8a-1d2e-4f00-9a1b-2c3d4e5f6a7b",
                    "planned_uplift": "50000.00",
                    "target_segment": "rfm:champions",
                }
            ]
        }
    )

    name: Name
    channel: Channel
    brand: Name | None = None
    owner: Identifier
    budget: Money
    start_date: Date
    end_date: Date
    gross_margin: Share = Decimal("1")
    line_id: Identifier | None = None
    """The budget line the campaign draws from (none = straight from the plan's budget)."""
    sales_unit_id: Identifier | None = None
    """The sales unit the campaign plans a sales uplift against."""
    planned_uplift: Money | None = None
    """The sales uplift planned against ``sales_unit_id``, in the plan's currency."""
    target_segment: TargetSegment | None = Field(
        default=None,
        description="The customer segment the campaign aims at: an RFM segment as "
        "`rfm:<name>` (e.g. `rfm:champions`) or a rule-based segment's id.",
        examples=["rfm:champions"],
    )


class CampaignPatch(StrictBody):
    """Changes to a campaign; absent fields stay as they are. Only ``brand``, ``line_id``,
    ``sales_unit_id``, ``planned_uplift`` and ``target_segment`` may be null (no brand; drawing
    from the plan itself; no planned uplift; no target segment): every other attribute is
    required, so an explicit null is refused (422)."""

    name: Name | MISSING = MISSING
    channel: Channel | MISSING = MISSING
    brand: Name | MISSING | None = MISSING
    owner: Identifier | MISSING = MISSING
    budget: Money | MISSING = MISSING
    start_date: Date | MISSING = MISSING
    end_date: Date | MISSING = MISSING
    gross_margin: Share | MISSING = MISSING
    status: CampaignStatus | MISSING = MISSING
    line_id: Identifier | MISSING | None = MISSING
    sales_unit_id: Identifier | MISSING | None = MISSING
    planned_uplift: Money | MISSING | None = MISSING
    target_segment: TargetSegment | MISSING | None = Field(
        default=MISSING,
        description="The customer segment the campaign aims at (null: none); applies at once, "
        "even to an approved campaign.",
        examples=["rfm:at_risk"],
    )


class StageIn(StrictBody):
    """A stage with a deadline."""

    name: Name
    deadline: UtcDatetime
    starts_at: UtcDatetime | None = None
    assignee: Identifier | None = None


class KpiTargetIn(StrictBody):
    """A KPI target of a campaign."""

    kpi: Annotated[Identifier, Field(json_schema_extra={"enum": list(KPI_NAMES)})]
    target: Measure
    direction: Direction | None = None
    weight: Weight = Decimal("1")
    tolerance: Tolerance = Decimal("0.05")


class StageOut(BaseModel):
    """A stage."""

    stage_id: str
    campaign_id: str
    name: str
    deadline: dt.datetime
    starts_at: dt.datetime | None
    assignee: str | None


class KpiTargetOut(BaseModel):
    """A KPI target."""

    target_id: str
    kpi: str
    target: Decimal
    direction: str
    weight: Decimal
    tolerance: Decimal


class ChangeRequestOut(BaseModel):
    """A requested change to an approved campaign's budget, line or dates."""

    request_id: str
    campaign_id: str
    changes: dict[str, str | None]
    requested_by: str
    requested_at: dt.datetime
    status: Literal["open", "accepted", "rejected", "superseded"] | str
    decided_by: str | None
    decided_at: dt.datetime | None
    reason: str | None


class CampaignOut(BaseModel):
    """A campaign with its stages and targets."""

    campaign_id: str
    plan_id: str
    name: str
    channel: str
    brand: str | None
    owner: str
    budget: Decimal
    currency: str
    start_date: dt.date
    end_date: dt.date
    gross_margin: Decimal
    status: str
    version: int
    line_id: str | None = None
    sales_unit_id: str | None = None
    planned_uplift: Decimal | None = None
    target_segment: str | None = Field(
        default=None, description="The customer segment the campaign aims at (null = none)."
    )
    change_requests: list[ChangeRequestOut] = []
    """Open change requests (at most one)."""
    stages: list[StageOut] = []
    kpi_targets: list[KpiTargetOut] = []


class PlanOut(BaseModel):
    """A plan with its campaigns."""

    plan_id: str
    name: str
    period_start: dt.date
    period_end: dt.date
    currency: str
    owner: str
    status: str
    approved_by: str | None
    budget: Decimal | None = None
    """The plan's cap (null = none)."""
    total_budget: Decimal
    """The sum of its campaigns' budgets."""
    campaigns: list[CampaignOut] = []


class ProposalOut(BaseModel):
    """A reallocation proposal from measurement: to a campaign or back to a budget line, by
    a plan's rule (``rule_id``; None: the settings' rule). ``status``: open, accepted,
    superseded (a newer proposal for the same giving campaign), applied (a rule in ``apply``
    mode) or failed (an applied move refused by planning's checks, ``note`` says why)."""

    proposal_id: str
    from_campaign_id: str
    to_campaign_id: str | None
    to_line_id: str | None
    amount: Decimal
    reason: str
    rule_id: str | None
    mode: Literal["propose", "apply"]
    proposed_at: dt.datetime
    status: Literal["open", "accepted", "superseded", "applied", "failed"]
    note: str | None


class Created(BaseModel):
    """The id of what was created."""

    id: str
