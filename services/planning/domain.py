"""Planning rules, free of I/O: each function checks a change and returns the events it causes.

State travels as small frozen ``*Facts`` records; the store turns them into rows.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, replace
from decimal import Decimal

from services.planning.approvals import APPROVER_ROLES, check_transition
from services.planning.budget import check_cap, check_draw
from shared.budget import Budget, Draw
from shared.errors import DomainError, Forbidden
from shared.events import EventData
from shared.events.planning import (
    BudgetAllocated,
    BudgetLineSet,
    BudgetReallocated,
    CampaignPlanned,
    CampaignStatusChanged,
    CampaignUpdated,
    KpiTargetSet,
    PlanApproved,
    PlanCreated,
    PlanUpdated,
    StageScheduled,
)
from shared.kpis import KPI_NAMES, Direction, direction_of

BUDGET_ROLES = APPROVER_ROLES


@dataclass(frozen=True)
class PlanFacts:
    """What the rules need to know about a plan."""

    plan_id: str
    name: str
    period_start: dt.date
    period_end: dt.date
    currency: str
    owner: str
    status: str = "draft"
    budget: Decimal | None = None

    def state(self) -> dict[str, object]:
        """The plan as the fields of a plan state event."""
        return {
            "plan_id": self.plan_id,
            "name": self.name,
            "period_start": self.period_start,
            "period_end": self.period_end,
            "currency": self.currency,
            "owner": self.owner,
            "status": "approved" if self.status == "approved" else "draft",
            "budget": self.budget,
        }


@dataclass(frozen=True)
class CampaignFacts:
    """The full state of a campaign."""

    campaign_id: str
    plan_id: str
    name: str
    channel: str
    owner: str
    budget: Decimal
    currency: str
    start_date: dt.date
    end_date: dt.date
    brand: str | None = None
    gross_margin: Decimal = Decimal("1")
    status: str = "draft"
    version: int = 1
    line_id: str | None = None
    sales_unit_id: str | None = None
    planned_uplift: Decimal | None = None
    target_segment: str | None = None

    def state(self) -> dict[str, object]:
        """The campaign as the fields of a campaign state event."""
        return {
            "campaign_id": self.campaign_id,
            "plan_id": self.plan_id,
            "name": self.name,
            "channel": self.channel,
            "brand": self.brand,
            "owner": self.owner,
            "budget": self.budget,
            "currency": self.currency,
            "start_date": self.start_date,
            "end_date": self.end_date,
            "gross_margin": self.gross_margin,
            "status": self.status,
            "version": self.version,
            "line_id": self.line_id,
            "sales_unit_id": self.sales_unit_id,
            "planned_uplift": self.planned_uplift,
            "target_segment": self.target_segment,
        }

    def draw(self) -> Draw:
        """What the campaign takes from its budget line (or the plan)."""
        return Draw(
            campaign_id=self.campaign_id,
            line_id=self.line_id,
            budget=self.budget,
            start_date=self.start_date,
            end_date=self.end_date,
            status=self.status,
        )


def check_period(start: dt.date, end: dt.date, *, end_field: str) -> None:
    """A period must not end before it starts."""
    if end < start:
        raise DomainError(
            f"{end_field} must not be before the start", field=end_field, status_code=422
        )


def create_plan(plan: PlanFacts) -> list[EventData]:
    """A new plan: checks its period and announces it."""
    check_period(plan.period_start, plan.period_end, end_field="period_end")
    return [PlanCreated(**plan.state())]  # type: ignore[arg-type]


def update_plan(
    plan: PlanFacts, budget: Budget, changes: dict[str, object], *, role: str
) -> tuple[PlanFacts, list[EventData]]:
    """Change a plan's name, owner or budget (cap); the cap must hold what its lines and
    campaigns take, and only cmo or admin change an approved plan's cap."""
    changes = {key: value for key, value in changes.items() if getattr(plan, key) != value}
    if not changes:
        return plan, []
    if "budget" in changes:
        if plan.status == "approved" and role not in BUDGET_ROLES:
            raise Forbidden("only cmo or admin change the budget of an approved plan")
        check_cap(budget, changes["budget"])  # type: ignore[arg-type]
    after = replace(plan, **changes)  # type: ignore[arg-type]
    return after, [PlanUpdated(**after.state())]  # type: ignore[arg-type]


def approve_plan(
    plan: PlanFacts, campaigns: list[CampaignFacts], *, approved_by: str
) -> tuple[PlanFacts, list[CampaignFacts], list[EventData]]:
    """Approve a draft plan; its draft and submitted campaigns become approved with it."""
    if plan.status == "approved":
        raise DomainError(f"plan {plan.plan_id!r} is already approved", field="plan_id")
    approved = replace(plan, status="approved")
    events: list[EventData] = [PlanApproved(plan_id=plan.plan_id, approved_by=approved_by)]
    changed = []
    for campaign in campaigns:
        if campaign.status in ("draft", "submitted"):
            after, status_events = change_status(
                campaign, status="approved", role="cmo", changed_by=approved_by
            )
            changed.append(after)
            events.extend(status_events)
    return approved, changed, events


def plan_campaign(plan: PlanFacts, budget: Budget, campaign: CampaignFacts) -> list[EventData]:
    """A new campaign within its plan's period, in the plan's currency, its budget within
    what its line (or the plan) has left."""
    _check_campaign_dates(plan, campaign)
    _check_uplift(campaign)
    check_draw(budget, campaign.draw())
    return [
        CampaignPlanned(**campaign.state()),  # type: ignore[arg-type]
        BudgetAllocated(
            campaign_id=campaign.campaign_id,
            plan_id=campaign.plan_id,
            amount=campaign.budget,
            currency=campaign.currency,
            version=campaign.version,
        ),
    ]


def update_campaign(
    plan: PlanFacts,
    budget: Budget,
    before: CampaignFacts,
    changes: dict[str, object],
    *,
    role: str,
    changed_by: str | None = None,
) -> tuple[CampaignFacts, list[EventData]]:
    """Apply attribute changes (and a status change, if any) as a new version; a new budget or
    line must fit what the line (or the plan) has left. Which changes wait for approval is
    decided before (``approvals.split_changes``)."""
    changes = {key: value for key, value in changes.items() if getattr(before, key) != value}
    if not changes:
        return before, []
    status = changes.pop("status", None)
    after = replace(before, **changes, version=before.version + 1) if changes else before  # type: ignore[arg-type]
    _check_campaign_dates(plan, after)
    _check_uplift(after)
    if {"budget", "line_id"} & changes.keys():
        check_draw(budget, after.draw())
    events: list[EventData] = []
    if changes:
        events.append(CampaignUpdated(**after.state()))  # type: ignore[arg-type]
    if "budget" in changes:
        events.append(_allocated(after))
    if status is not None:
        after, status_events = change_status(
            after, status=str(status), role=role, changed_by=changed_by
        )
        events.extend(status_events)
    return after, events


def change_status(
    campaign: CampaignFacts,
    *,
    status: str,
    role: str,
    changed_by: str | None = None,
    reason: str | None = None,
) -> tuple[CampaignFacts, list[EventData]]:
    """Move a campaign to ``status`` if the lifecycle and ``role`` allow it."""
    if status == campaign.status:
        return campaign, []
    check_transition(campaign.status, status, role=role, reason=reason)
    after = replace(campaign, status=status, version=campaign.version + 1)
    return after, [
        CampaignStatusChanged(
            campaign_id=campaign.campaign_id,
            plan_id=campaign.plan_id,
            status=status,  # type: ignore[arg-type]
            previous_status=campaign.status,  # type: ignore[arg-type]
            version=after.version,
            changed_by=changed_by,
            reason=reason,
        )
    ]


def schedule_stage(
    campaign: CampaignFacts,
    *,
    stage_id: str,
    name: str,
    deadline: dt.datetime,
    starts_at: dt.datetime | None,
    assignee: str | None,
    version: int = 1,
) -> list[EventData]:
    """A stage of a live campaign, its deadline after its start."""
    if campaign.status in ("completed", "cancelled"):
        raise DomainError(f"campaign is {campaign.status}", field="campaign_id")
    if starts_at is not None and deadline < starts_at:
        raise DomainError(
            "deadline must not be before starts_at", field="deadline", status_code=422
        )
    return [
        StageScheduled(
            stage_id=stage_id,
            campaign_id=campaign.campaign_id,
            name=name,
            deadline=deadline,
            starts_at=starts_at,
            assignee=assignee,
            version=version,
        )
    ]


def set_kpi_target(
    campaign: CampaignFacts,
    *,
    target_id: str,
    kpi: str,
    target: Decimal,
    direction: Direction | None,
    weight: Decimal,
    tolerance: Decimal,
) -> list[EventData]:
    """A measurable goal for one KPI of the catalogue."""
    if kpi not in KPI_NAMES:
        raise DomainError(
            f"unknown KPI {kpi!r}; one of: {', '.join(KPI_NAMES)}", field="kpi", status_code=422
        )
    if target < 0:
        raise DomainError("must not be negative", field="target", status_code=422)
    return [
        KpiTargetSet(
            target_id=target_id,
            campaign_id=campaign.campaign_id,
            kpi=kpi,
            target=target,
            direction=direction or direction_of(kpi),
            weight=weight,
            tolerance=tolerance,
        )
    ]


def reallocate_budget(
    source: CampaignFacts,
    destination: CampaignFacts,
    *,
    amount: Decimal,
    reason: str | None,
    requested_by: str,
    reallocation_id: str | None = None,
    rule_id: str | None = None,
) -> tuple[CampaignFacts, CampaignFacts, list[EventData]]:
    """Move ``amount`` of budget between two campaigns of the same plan."""
    if source.campaign_id == destination.campaign_id:
        raise DomainError(
            "must differ from from_campaign_id", field="to_campaign_id", status_code=422
        )
    if source.plan_id != destination.plan_id:
        raise DomainError(
            "both campaigns must belong to the same plan", field="to_campaign_id", status_code=422
        )
    if amount <= 0:
        raise DomainError("must be greater than 0", field="amount", status_code=422)
    if amount > source.budget:
        raise DomainError(
            f"exceeds the budget of the source campaign ({source.budget})",
            field="amount",
            status_code=422,
        )
    for campaign, field in ((source, "from_campaign_id"), (destination, "to_campaign_id")):
        if campaign.status in ("completed", "cancelled"):
            raise DomainError(f"campaign is {campaign.status}", field=field)
    source_after = replace(source, budget=source.budget - amount, version=source.version + 1)
    destination_after = replace(
        destination, budget=destination.budget + amount, version=destination.version + 1
    )
    events: list[EventData] = [
        BudgetReallocated(
            reallocation_id=reallocation_id or str(uuid.uuid4()),
            plan_id=source.plan_id,
            from_campaign_id=source.campaign_id,
            to_campaign_id=destination.campaign_id,
            amount=amount,
            currency=source.currency,
            from_budget=source_after.budget,
            to_budget=destination_after.budget,
            reason=reason,
            requested_by=requested_by,
            rule_id=rule_id,
        ),
        CampaignUpdated(**source_after.state()),  # type: ignore[arg-type]
        CampaignUpdated(**destination_after.state()),  # type: ignore[arg-type]
        _allocated(source_after),
        _allocated(destination_after),
    ]
    return source_after, destination_after, events


def return_to_line(
    source: CampaignFacts,
    *,
    line_id: str,
    amount: Decimal,
    reason: str | None,
    requested_by: str,
    reallocation_id: str,
    rule_id: str | None = None,
) -> tuple[CampaignFacts, list[EventData]]:
    """Take ``amount`` of a campaign's budget back to the budget line ``line_id`` (the line's
    new state is the caller's: ``budget.move_into_line``)."""
    if amount <= 0:
        raise DomainError("must be greater than 0", field="amount", status_code=422)
    if amount > source.budget:
        raise DomainError(
            f"exceeds the budget of the source campaign ({source.budget})",
            field="amount",
            status_code=422,
        )
    if source.status in ("completed", "cancelled"):
        raise DomainError(f"campaign is {source.status}", field="from_campaign_id")
    after = replace(source, budget=source.budget - amount, version=source.version + 1)
    moved = BudgetReallocated(
        reallocation_id=reallocation_id,
        plan_id=source.plan_id,
        from_campaign_id=source.campaign_id,
        to_line_id=line_id,
        amount=amount,
        currency=source.currency,
        from_budget=after.budget,
        reason=reason,
        requested_by=requested_by,
        rule_id=rule_id,
    )
    return after, [moved, CampaignUpdated(**after.state()), _allocated(after)]  # type: ignore[arg-type]


def current_state(
    *,
    plans: list[PlanFacts],
    campaigns: list[CampaignFacts],
    lines: list[BudgetLineSet],
    stages: list[StageScheduled],
    targets: list[KpiTargetSet],
) -> list[EventData]:
    """The events that tell a consumer starting from nothing everything planning holds now:
    each plan (its status says whether it is approved), its budget lines, each campaign with
    its budget at its current version, its stages and KPI targets. Consumers upsert by
    version, so sending them again changes nothing where they are known. ``plan.approved`` is
    not sent again: it is a notification's cause (the plan's owner would be told twice), and
    ``plan.created`` carries the status."""
    events: list[EventData] = []
    for plan in plans:
        events.append(PlanCreated(**plan.state()))  # type: ignore[arg-type]
    events.extend(lines)
    for campaign in campaigns:
        events.append(CampaignPlanned(**campaign.state()))  # type: ignore[arg-type]
        events.append(_allocated(campaign))
    events.extend(stages)
    events.extend(targets)
    return events


def _allocated(campaign: CampaignFacts) -> BudgetAllocated:
    return BudgetAllocated(
        campaign_id=campaign.campaign_id,
        plan_id=campaign.plan_id,
        amount=campaign.budget,
        currency=campaign.currency,
        version=campaign.version,
    )


def _check_uplift(campaign: CampaignFacts) -> None:
    # an uplift against no unit would count nowhere in the sales plans
    if campaign.planned_uplift is not None and campaign.sales_unit_id is None:
        raise DomainError(
            "a planned_uplift needs the sales unit it is planned against",
            field="sales_unit_id",
            status_code=422,
        )


def _check_campaign_dates(plan: PlanFacts, campaign: CampaignFacts) -> None:
    check_period(campaign.start_date, campaign.end_date, end_field="end_date")
    if campaign.start_date < plan.period_start or campaign.start_date > plan.period_end:
        raise DomainError(
            f"must lie within the plan period {plan.period_start}..{plan.period_end}",
            field="start_date",
            status_code=422,
        )
    if campaign.end_date > plan.period_end:
        raise DomainError(
            f"must lie within the plan period {plan.period_start}..{plan.period_end}",
            field="end_date",
            status_code=422,
        )
