"""Events the planning service publishes on ``mrm.planning.v1``.

Campaign and stage events carry the full current state with a ``version`` so that consumers
upsert and late or repeated events converge to the latest state.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from shared import topics
from shared.events.envelope import (
    Channel,
    Count,
    Currency,
    Date,
    EventData,
    Identifier,
    Measure,
    Money,
    Month,
    Name,
    Share,
    Text,
    UtcDatetime,
    Version,
    Weight,
)
from shared.reallocation import ActionKind, Comparison, RuleMode

PlanStatus = Literal["draft", "approved"]
CampaignStatus = Literal[
    "draft", "submitted", "approved", "rejected", "active", "paused", "completed", "cancelled"
]
KpiDirection = Literal["higher_is_better", "lower_is_better"]


class _PlanningEvent(EventData):
    topic = topics.PLANNING


class PlanCreated(_PlanningEvent):
    """A strategic plan was created."""

    event_type = "plan.created"
    key_field = "plan_id"

    plan_id: Identifier
    name: Name
    period_start: Date
    period_end: Date
    currency: Currency
    owner: Identifier
    status: PlanStatus = "draft"
    budget: Money | None = None
    """The plan's total budget, the cap of its budget lines and campaigns (None = no cap)."""


class PlanUpdated(PlanCreated):
    """A plan's name, owner or budget changed; carries the plan's full state."""

    event_type = "plan.updated"


class PlanApproved(_PlanningEvent):
    """A plan was approved by the CMO or an admin."""

    event_type = "plan.approved"
    key_field = "plan_id"

    plan_id: Identifier
    approved_by: Identifier


class CampaignState(_PlanningEvent):
    """The full state of a campaign (shared by ``campaign.planned`` and ``campaign.updated``)."""

    key_field = "campaign_id"

    campaign_id: Identifier
    plan_id: Identifier
    name: Name
    channel: Channel
    brand: Name | None = None
    owner: Identifier
    budget: Money
    currency: Currency
    start_date: Date
    end_date: Date
    gross_margin: Share = Decimal("1.0")
    status: CampaignStatus = "draft"
    version: Version = 1
    line_id: Identifier | None = None
    """The budget line the campaign draws from (None = straight from the plan's budget)."""
    sales_unit_id: Identifier | None = None
    """The sales unit the campaign plans a sales uplift against (None = none)."""
    planned_uplift: Money | None = None
    """The sales uplift the campaign plans against ``sales_unit_id``, in ``currency``."""
    target_segment: Identifier | None = None
    """The customer segment the campaign aims at: an RFM segment as ``rfm:<name>`` (e.g.
    ``rfm:champions``) or the id of a rule-based segment (None = no target; events written
    before the field existed parse as None)."""


class CampaignPlanned(CampaignState):
    """A campaign was added to a plan."""

    event_type = "campaign.planned"


class CampaignUpdated(CampaignState):
    """A campaign's attributes changed; carries the full new state."""

    event_type = "campaign.updated"


class CampaignStatusChanged(_PlanningEvent):
    """A campaign moved to another status."""

    event_type = "campaign.status_changed"
    key_field = "campaign_id"

    campaign_id: Identifier
    plan_id: Identifier
    status: CampaignStatus
    previous_status: CampaignStatus
    version: Version
    changed_by: Identifier | None = None
    reason: Text | None = None
    """Why (given with a rejection)."""


class CampaignChangeRequested(_PlanningEvent):
    """A change to an approved campaign's budget, line or dates awaits a CMO or admin; the
    approved values stand meanwhile. ``changes`` holds the requested values as text."""

    event_type = "campaign.change_requested"
    key_field = "campaign_id"

    request_id: Identifier
    campaign_id: Identifier
    plan_id: Identifier
    changes: dict[Identifier, Text | None]
    requested_by: Identifier


class CampaignChangeDecided(_PlanningEvent):
    """A change request was accepted (a ``campaign.updated`` follows) or rejected."""

    event_type = "campaign.change_decided"
    key_field = "campaign_id"

    request_id: Identifier
    campaign_id: Identifier
    plan_id: Identifier
    decision: Literal["accepted", "rejected", "superseded"]
    decided_by: Identifier
    reason: Text | None = None


class StageScheduled(_PlanningEvent):
    """A campaign stage was scheduled (or rescheduled) with a deadline."""

    event_type = "stage.scheduled"
    key_field = "campaign_id"

    stage_id: Identifier
    campaign_id: Identifier
    name: Name
    deadline: UtcDatetime
    starts_at: UtcDatetime | None = None
    assignee: Identifier | None = None
    version: Version = 1


class BudgetAllocated(_PlanningEvent):
    """A campaign's allocated budget was set (the total, not a delta)."""

    event_type = "budget.allocated"
    key_field = "campaign_id"

    campaign_id: Identifier
    plan_id: Identifier
    amount: Money
    currency: Currency
    version: Version = 1


class BudgetLineSet(_PlanningEvent):
    """A budget line of a plan was created or changed; carries its full state. Lines nest
    (``parent_id``) and each carries any of brand, channel, region and partner; ``months`` is
    its phasing (None = evenly over the plan period)."""

    event_type = "budget_line.set"
    key_field = "plan_id"

    line_id: Identifier
    plan_id: Identifier
    parent_id: Identifier | None = None
    name: Name
    brand: Name | None = None
    channel: Channel | None = None
    region: Name | None = None
    partner: Name | None = None
    amount: Money
    currency: Currency
    months: dict[Month, Money] | None = None
    version: Version = 1


class BudgetLineReallocated(_PlanningEvent):
    """Budget moved from one budget line to another of the same plan; carries both new
    amounts (each line's full state follows as ``budget_line.set``)."""

    event_type = "budget_line.reallocated"
    key_field = "plan_id"

    reallocation_id: Identifier
    plan_id: Identifier
    from_line_id: Identifier
    to_line_id: Identifier
    amount: Money
    currency: Currency
    from_amount: Money
    to_amount: Money
    reason: Text | None = None
    requested_by: Identifier


class BudgetLineRemoved(_PlanningEvent):
    """An empty budget line was removed from its plan."""

    event_type = "budget_line.removed"
    key_field = "plan_id"

    line_id: Identifier
    plan_id: Identifier


class BudgetReallocated(_PlanningEvent):
    """Budget moved from one campaign to another (``to_campaign_id``, whose new total is
    ``to_budget``) or back to a budget line of the plan (``to_line_id``; that line's new state
    follows as ``budget_line.set``); ``rule_id`` names the reallocation rule that applied it."""

    event_type = "budget.reallocated"
    key_field = "plan_id"

    reallocation_id: Identifier
    plan_id: Identifier
    from_campaign_id: Identifier
    to_campaign_id: Identifier | None = None
    to_line_id: Identifier | None = None
    amount: Money
    currency: Currency
    from_budget: Money
    to_budget: Money | None = None
    reason: Text | None = None
    requested_by: Identifier
    rule_id: Identifier | None = None

    @model_validator(mode="after")
    def _one_recipient(self) -> Self:
        if (self.to_campaign_id is None) == (self.to_line_id is None):
            raise ValueError("exactly one of to_campaign_id and to_line_id is required")
        if (self.to_budget is None) != (self.to_campaign_id is None):
            raise ValueError("to_budget is the receiving campaign's new budget: give it with it")
        return self


class KpiTargetSet(_PlanningEvent):
    """A measurable goal of a campaign (one KPI, its target value, weight and direction)."""

    event_type = "kpi_target.set"
    key_field = "campaign_id"

    target_id: Identifier
    campaign_id: Identifier
    kpi: Identifier
    target: Measure
    direction: KpiDirection
    weight: Weight = Decimal("1")
    tolerance: Annotated[Share, Field(lt=1)] = Decimal("0.05")


SalesUnitKind = Literal["company", "region", "division", "rep", "partner"]


class SalesUnitSet(_PlanningEvent):
    """A unit of the sales-target tree (company → region or division → sales rep or trade
    partner) was created or changed. ``code`` is the id sale events carry for it (their
    ``partner_id``, ``rep_id`` or ``region``)."""

    event_type = "sales_unit.set"
    key_field = "unit_id"

    unit_id: Identifier
    parent_id: Identifier | None = None
    kind: SalesUnitKind
    name: Name
    owner: Identifier
    code: Identifier | None = None


class SalesTargetSet(_PlanningEvent):
    """A unit's sales target for a month or quarter (and a brand, or all brands) was set."""

    event_type = "sales_target.set"
    key_field = "unit_id"

    target_id: Identifier
    unit_id: Identifier
    period: Identifier
    """``YYYY-MM`` or ``YYYY-Qn``."""
    period_start: Date
    period_end: Date
    brand: Name | None = None
    amount: Money
    currency: Currency
    set_by: Identifier
    version: Version = 1


class SalesTargetProposed(_PlanningEvent):
    """A unit's owner proposed another figure for its target (bottom-up), with a comment."""

    event_type = "sales_target.proposed"
    key_field = "unit_id"

    proposal_id: Identifier
    target_id: Identifier
    unit_id: Identifier
    amount: Money
    comment: Text | None = None
    proposed_by: Identifier


class SalesTargetProposalDecided(_PlanningEvent):
    """The parent unit's owner accepted (a ``sales_target.set`` follows) or rejected a
    proposed figure."""

    event_type = "sales_target.proposal_decided"
    key_field = "unit_id"

    proposal_id: Identifier
    target_id: Identifier
    unit_id: Identifier
    decision: Literal["accepted", "rejected"]
    decided_by: Identifier
    reason: Text | None = None


DiscountScope = Literal["plan", "line", "campaign"]


class DiscountLimitSet(_PlanningEvent):
    """The discount limits of a plan, a budget line or a campaign were set: a promo fund (the
    total discount that may be given, None = no fund) and a maximum discount rate per sale
    (None = none). A campaign's own limits apply first, then its line's, the nearest ancestor
    line's, then the plan's. Carries the full state with a ``version``."""

    event_type = "discount_limit.set"
    key_field = "plan_id"

    scope_kind: DiscountScope
    scope_id: Identifier
    plan_id: Identifier
    promo_fund: Money | None = None
    max_discount_rate: Share | None = None
    currency: Currency
    version: Version = 1


class ReallocationRuleSet(_PlanningEvent):
    """A plan's reallocation rule was created or changed (full state, with ``version``).

    When a live campaign of the plan (of the budget line ``scope_line_id`` or a line beneath
    it, when given) has spent ``min_spend_share`` of its budget and its
    ``kpi`` compares to ``threshold`` as ``comparison`` says for ``hold_s`` seconds, ``share``
    of its unspent budget (if at least ``min_amount``) goes to the best-scoring campaign of its
    line (``best_in_line``; a recipient must score at least ``recipient_threshold`` — at most,
    for a ``gt``/``ge`` condition — when given) or to the campaign or budget line
    ``target_id``; proposed, or applied by planning (``mode``). The rule fires once per
    episode: the condition ends once the KPI is ``hysteresis`` past the threshold.
    ``is_default``: the rule every plan gets at creation (the reallocation settings)."""

    event_type = "reallocation_rule.set"
    key_field = "plan_id"

    rule_id: Identifier
    plan_id: Identifier
    kpi: Identifier
    comparison: Comparison
    threshold: Measure
    min_spend_share: Share = Decimal(0)
    hold_s: Count = 0
    hysteresis: Annotated[Measure, Field(ge=0)] = Decimal(0)
    action: ActionKind
    target_id: Identifier | None = None
    recipient_threshold: Measure | None = None
    share: Annotated[Share, Field(gt=0)]
    min_amount: Money = Decimal(0)
    mode: RuleMode = "propose"
    enabled: bool = True
    scope_line_id: Identifier | None = None
    is_default: bool = False
    version: Version = 1


class ReallocationRuleRemoved(_PlanningEvent):
    """A plan's reallocation rule was removed."""

    event_type = "reallocation_rule.removed"
    key_field = "plan_id"

    rule_id: Identifier
    plan_id: Identifier


class ReallocationApplyFailed(_PlanningEvent):
    """A reallocation rule in ``apply`` mode fired, but planning's checks refused the move
    (``note`` says why, e.g. more than the donor's unspent budget); nothing moved."""

    event_type = "reallocation.apply_failed"
    key_field = "plan_id"

    proposal_id: Identifier
    plan_id: Identifier
    rule_id: Identifier | None = None
    from_campaign_id: Identifier
    to_campaign_id: Identifier | None = None
    to_line_id: Identifier | None = None
    amount: Money
    currency: Currency | None = None
    """The plan's currency (None: the plan is unknown to planning)."""
    reason: Text
    note: Text


PLANNING_EVENTS: tuple[type[EventData], ...] = (
    PlanCreated,
    PlanUpdated,
    PlanApproved,
    CampaignPlanned,
    CampaignUpdated,
    CampaignStatusChanged,
    CampaignChangeRequested,
    CampaignChangeDecided,
    StageScheduled,
    BudgetAllocated,
    BudgetLineSet,
    BudgetLineRemoved,
    BudgetLineReallocated,
    BudgetReallocated,
    KpiTargetSet,
    SalesUnitSet,
    SalesTargetSet,
    SalesTargetProposed,
    SalesTargetProposalDecided,
    DiscountLimitSet,
    ReallocationRuleSet,
    ReallocationRuleRemoved,
    ReallocationApplyFailed,
)
