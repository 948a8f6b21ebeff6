"""Planning use cases: load state, apply the domain rules, save state and events in one go."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

from services.planning import (
    approvals,
    budget,
    budget_store,
    discount_usecases,
    domain,
    rule_usecases,
    sales_store,
    store,
)
from services.planning.domain import CampaignFacts, PlanFacts
from services.planning.rules import RuleDraft
from services.planning.store import Store
from shared.auth import Principal
from shared.errors import DomainError, Forbidden, NotFound
from shared.events.planning import (
    CampaignChangeDecided,
    CampaignChangeRequested,
)
from shared.kpis import Direction


def load_plan(uow: store.UnitOfWork, plan_id: str) -> store.Plan:
    """The plan's row in this unit of work (404 if unknown)."""
    plan = store.get_plan(session=uow.session, plan_id=plan_id)
    if plan is None:
        raise NotFound("plan", plan_id)
    return plan


def load_campaign(
    uow: store.UnitOfWork, campaign_id: str, *, field: str | None = None
) -> store.Campaign:
    """The campaign's row in this unit of work (404 if unknown; a 422 naming ``field`` when
    the id came in a request body)."""
    campaign = store.get_campaign(session=uow.session, campaign_id=campaign_id)
    if campaign is None:
        if field:
            raise DomainError(f"campaign {campaign_id!r} not found", field=field, status_code=422)
        raise NotFound("campaign", campaign_id)
    return campaign


def check_sales_unit(uow: store.UnitOfWork, sales_unit_id: str | None) -> None:
    """A campaign's sales unit must exist (a 422 naming ``sales_unit_id``)."""
    if sales_unit_id is not None and uow.session.get(sales_store.SalesUnit, sales_unit_id) is None:
        raise DomainError(
            f"no sales unit {sales_unit_id!r}", field="sales_unit_id", status_code=422
        )


def create_plan(
    *,
    db: Store,
    name: str,
    period_start: dt.date,
    period_end: dt.date,
    currency: str,
    owner: str,
    principal: Principal,
    budget: Decimal | None = None,
    default_rule: RuleDraft | None = None,
) -> str:
    """Create a draft plan (``budget``: its cap, None = none) with its default reallocation
    rule, if one is given; returns its id."""
    facts = PlanFacts(
        plan_id=str(uuid.uuid4()),
        name=name,
        period_start=period_start,
        period_end=period_end,
        currency=currency,
        owner=owner,
        budget=budget,
    )
    events = domain.create_plan(facts)
    with db.unit_of_work() as uow:
        uow.session.add(
            store.Plan(
                id=facts.plan_id,
                name=name,
                period_start=period_start,
                period_end=period_end,
                currency=currency,
                owner=owner,
                status="draft",
                budget=budget,
            )
        )
        uow.audit(
            entity_type="plan",
            entity_id=facts.plan_id,
            plan_id=facts.plan_id,
            action="created",
            actor=principal,
            after=facts,
        )
        uow.publish(events)
        if default_rule is not None:
            rule_usecases.add_rule(
                uow,
                plan_id=facts.plan_id,
                draft=default_rule,
                principal=principal,
                is_default=True,
            )
    return facts.plan_id


def update_plan(
    *, db: Store, plan_id: str, changes: dict[str, object], principal: Principal
) -> None:
    """Change a plan's name, owner or budget cap."""
    with db.unit_of_work() as uow:
        plan = load_plan(uow, plan_id)
        before = store.plan_facts(plan)
        after, events = domain.update_plan(
            before,
            budget_store.budget_of(session=uow.session, plan=plan),
            changes,
            role=principal.role,
        )
        if not events:
            return
        plan.name, plan.owner, plan.budget = after.name, after.owner, after.budget
        uow.audit(
            entity_type="plan",
            entity_id=plan_id,
            plan_id=plan_id,
            action="updated",
            actor=principal,
            before=before,
            after=after,
        )
        uow.publish(events)


def approve_plan(*, db: Store, plan_id: str, principal: Principal) -> None:
    """Approve a plan (and its draft campaigns)."""
    with db.unit_of_work() as uow:
        plan = load_plan(uow, plan_id)
        campaigns = [
            store.campaign_facts(c)
            for c in store.list_campaigns(session=uow.session, plan_id=plan_id)
        ]
        before = store.plan_facts(plan)
        approved, changed, events = domain.approve_plan(
            before, campaigns, approved_by=principal.subject
        )
        plan.status = "approved"
        plan.approved_by = principal.subject
        plan.approved_at = dt.datetime.now(dt.UTC)
        uow.audit(
            entity_type="plan",
            entity_id=plan_id,
            plan_id=plan_id,
            action="approved",
            actor=principal,
            before=before,
            after=approved,
        )
        was = {campaign.campaign_id: campaign for campaign in campaigns}
        for facts in changed:
            store.save_campaign(session=uow.session, facts=facts)
            audit_campaign(uow, principal, "approved", was[facts.campaign_id], facts)
        uow.publish(events)


def plan_campaign(
    *,
    db: Store,
    plan_id: str,
    name: str,
    channel: str,
    brand: str | None,
    owner: str,
    budget: Decimal,
    start_date: dt.date,
    end_date: dt.date,
    gross_margin: Decimal,
    principal: Principal,
    line_id: str | None = None,
    sales_unit_id: str | None = None,
    planned_uplift: Decimal | None = None,
    target_segment: str | None = None,
) -> str:
    """Add a draft campaign with its budget to a plan, drawing from ``line_id`` (None = from
    the plan itself), planning ``planned_uplift`` of sales against ``sales_unit_id`` (if
    given), aimed at ``target_segment`` (if given); returns its id."""
    with db.unit_of_work() as uow:
        plan_row = load_plan(uow, plan_id)
        check_sales_unit(uow, sales_unit_id)
        plan = store.plan_facts(plan_row)
        facts = CampaignFacts(
            campaign_id=str(uuid.uuid4()),
            plan_id=plan_id,
            name=name,
            channel=channel,
            brand=brand,
            owner=owner,
            budget=budget,
            currency=plan.currency,
            start_date=start_date,
            end_date=end_date,
            gross_margin=gross_margin,
            status="draft",
            line_id=line_id,
            sales_unit_id=sales_unit_id,
            planned_uplift=planned_uplift,
            target_segment=target_segment,
        )
        events = domain.plan_campaign(
            plan, budget_store.budget_of(session=uow.session, plan=plan_row), facts
        )
        store.save_campaign(session=uow.session, facts=facts)
        audit_campaign(uow, principal, "created", None, facts)
        uow.publish(events)
    return facts.campaign_id


def update_campaign(
    *, db: Store, campaign_id: str, changes: dict[str, object], principal: Principal
) -> str | None:
    """Change a campaign's attributes, budget or status. The budget, line or dates of an
    approved campaign changed by someone other than a CMO or admin wait as a change request
    (checked now, and again when decided; a newer one supersedes it); returns its id, if any.
    Its sales unit, planned uplift and target segment move no money: they apply at once,
    approved or not."""
    with db.unit_of_work() as uow:
        row = load_campaign(uow, campaign_id)
        plan_row = load_plan(uow, row.plan_id)
        plan, before = store.plan_facts(plan_row), store.campaign_facts(row)
        plan_budget = budget_store.budget_of(session=uow.session, plan=plan_row)
        changes = {key: value for key, value in changes.items() if getattr(before, key) != value}
        check_sales_unit(uow, changes.get("sales_unit_id"))  # type: ignore[arg-type]
        direct, requested = approvals.split_changes(before.status, changes, role=principal.role)
        after, events = domain.update_campaign(
            plan, plan_budget, before, direct, role=principal.role, changed_by=principal.subject
        )
        if events:
            store.save_campaign(session=uow.session, facts=after)
            action = after.status if set(direct) == {"status"} else "updated"
            audit_campaign(uow, principal, action, before, after)
        request_id = None
        if requested:
            # the request must make sense now: checked as if a CMO applied it at once
            domain.update_campaign(plan, plan_budget, after, requested, role="cmo")
            request_id = _open_change_request(uow, principal, after, requested)
        uow.publish(events)
    return request_id


def _open_change_request(
    uow: store.UnitOfWork,
    principal: Principal,
    campaign: CampaignFacts,
    requested: dict[str, object],
) -> str:
    for older in store.open_change_requests(session=uow.session, campaign_id=campaign.campaign_id):
        _close_request(uow, principal, older, decision="superseded", reason=None)
    request = store.ChangeRequest(
        id=str(uuid.uuid4()),
        campaign_id=campaign.campaign_id,
        plan_id=campaign.plan_id,
        changes=json.dumps(approvals.as_text(requested), sort_keys=True),
        requested_by=principal.subject,
        requested_at=dt.datetime.now(dt.UTC),
        status="open",
    )
    uow.session.add(request)
    uow.audit(
        entity_type="change_request",
        entity_id=request.id,
        plan_id=campaign.plan_id,
        action="requested",
        actor=principal,
        before={key: getattr(campaign, key) for key in requested},
        after=approvals.as_text(requested),
    )
    uow.audit(
        entity_type="campaign",
        entity_id=campaign.campaign_id,
        plan_id=campaign.plan_id,
        action="change_requested",
        actor=principal,
        after=approvals.as_text(requested),
    )
    uow.publish(
        [
            CampaignChangeRequested(
                request_id=request.id,
                campaign_id=campaign.campaign_id,
                plan_id=campaign.plan_id,
                changes=approvals.as_text(requested),
                requested_by=principal.subject,
            )
        ]
    )
    return request.id


def _close_request(
    uow: store.UnitOfWork,
    principal: Principal,
    request: store.ChangeRequest,
    *,
    decision: str,
    reason: str | None,
) -> None:
    request.status = decision
    request.decided_by = principal.subject
    request.decided_at = dt.datetime.now(dt.UTC)
    request.reason = reason
    uow.audit(
        entity_type="change_request",
        entity_id=request.id,
        plan_id=request.plan_id,
        action=decision,
        actor=principal,
        reason=reason,
    )
    uow.publish(
        [
            CampaignChangeDecided(
                request_id=request.id,
                campaign_id=request.campaign_id,
                plan_id=request.plan_id,
                decision=decision,  # type: ignore[arg-type]
                decided_by=principal.subject,
                reason=reason,
            )
        ]
    )


def decide_change_request(
    *, db: Store, request_id: str, accept: bool, reason: str | None, principal: Principal
) -> str:
    """Accept (apply, checked against today's budget) or reject an open change request (cmo,
    admin); returns the campaign's id."""
    if principal.role not in approvals.APPROVER_ROLES:
        raise Forbidden("only cmo or admin decide change requests")
    with db.unit_of_work() as uow:
        request = uow.session.get(store.ChangeRequest, request_id)
        if request is None:
            raise NotFound("change request", request_id)
        if request.status != "open":
            raise DomainError(
                f"the change request is {request.status}", field="request_id", status_code=409
            )
        if not accept:
            if not (reason and reason.strip()):
                raise DomainError("a rejection needs a reason", field="reason", status_code=422)
            _close_request(uow, principal, request, decision="rejected", reason=reason)
            return request.campaign_id
        row = load_campaign(uow, request.campaign_id)
        plan_row = load_plan(uow, row.plan_id)
        before = store.campaign_facts(row)
        after, events = domain.update_campaign(
            store.plan_facts(plan_row),
            budget_store.budget_of(session=uow.session, plan=plan_row),
            before,
            approvals.from_text(json.loads(request.changes)),
            role=principal.role,
            changed_by=principal.subject,
        )
        store.save_campaign(session=uow.session, facts=after)
        audit_campaign(uow, principal, "updated", before, after)
        _close_request(uow, principal, request, decision="accepted", reason=reason)
        uow.publish(events)
        return request.campaign_id


def change_status(
    *, db: Store, campaign_id: str, status: str, reason: str | None, principal: Principal
) -> None:
    """Submit, approve, reject (with a reason), start, pause, complete or cancel a campaign."""
    with db.unit_of_work() as uow:
        row = load_campaign(uow, campaign_id)
        before = store.campaign_facts(row)
        after, events = domain.change_status(
            before, status=status, role=principal.role, changed_by=principal.subject, reason=reason
        )
        if not events:
            return
        store.save_campaign(session=uow.session, facts=after)
        audit_campaign(uow, principal, status, before, after, reason=reason)
        uow.publish(events)


def audit_campaign(
    uow: store.UnitOfWork,
    principal: Principal,
    action: str,
    before: CampaignFacts | None,
    after: CampaignFacts,
    *,
    reason: str | None = None,
) -> None:
    """Record a campaign's change in the audit log (its state before and after)."""
    uow.audit(
        entity_type="campaign",
        entity_id=after.campaign_id,
        plan_id=after.plan_id,
        action=action,
        actor=principal,
        before=before.state() if before else None,
        after=after.state(),
        reason=reason,
    )


def schedule_stage(
    *,
    db: Store,
    campaign_id: str,
    name: str,
    deadline: dt.datetime,
    starts_at: dt.datetime | None,
    assignee: str | None,
    principal: Principal,
) -> str:
    """Schedule a stage of a campaign; returns its id."""
    stage_id = str(uuid.uuid4())
    with db.unit_of_work() as uow:
        campaign = store.campaign_facts(load_campaign(uow, campaign_id))
        events = domain.schedule_stage(
            campaign,
            stage_id=stage_id,
            name=name,
            deadline=deadline,
            starts_at=starts_at,
            assignee=assignee,
        )
        uow.session.add(
            store.Stage(
                id=stage_id,
                campaign_id=campaign_id,
                name=name,
                deadline=deadline,
                starts_at=starts_at,
                assignee=assignee,
                version=1,
            )
        )
        uow.audit(
            entity_type="stage",
            entity_id=stage_id,
            plan_id=campaign.plan_id,
            action="scheduled",
            actor=principal,
            after=events[0].model_dump(mode="json"),
        )
        uow.publish(events)
    return stage_id


def set_kpi_target(
    *,
    db: Store,
    campaign_id: str,
    kpi: str,
    target: Decimal,
    direction: Direction | None,
    weight: Decimal,
    tolerance: Decimal,
    principal: Principal,
) -> str:
    """Set (or replace) a campaign's target for one KPI; returns the target id."""
    with db.unit_of_work() as uow:
        campaign = store.campaign_facts(load_campaign(uow, campaign_id))
        row = store.find_target(session=uow.session, campaign_id=campaign_id, kpi=kpi)
        target_id = row.id if row is not None else str(uuid.uuid4())
        events = domain.set_kpi_target(
            campaign,
            target_id=target_id,
            kpi=kpi,
            target=target,
            direction=direction,
            weight=weight,
            tolerance=tolerance,
        )
        before = None if row is None else store.target_event(row).model_dump(mode="json")
        if row is None:
            row = store.KpiTarget(id=target_id, campaign_id=campaign_id, kpi=kpi)
            uow.session.add(row)
        uow.audit(
            entity_type="kpi_target",
            entity_id=target_id,
            plan_id=campaign.plan_id,
            action="set",
            actor=principal,
            before=before,
            after=events[0].model_dump(mode="json"),
        )
        row.target = target
        row.direction = events[0].direction  # type: ignore[attr-defined]
        row.weight = weight
        row.tolerance = tolerance
        uow.publish(events)
    return target_id


def republish_state(*, db: Store) -> int:
    """Queue every plan, campaign, stage, KPI target, discount limit and reallocation rule as
    events again (after the broker lost ``mrm.planning.v1``, so projections rebuild from
    planning's state); returns how many."""
    with db.unit_of_work() as uow:
        session = uow.session
        plans = store.list_plans(session=session)
        campaigns = [
            store.campaign_facts(campaign)
            for plan in plans
            for campaign in store.list_campaigns(session=session, plan_id=plan.id)
        ]
        currency = {plan.id: plan.currency for plan in plans}
        events = domain.current_state(
            plans=[store.plan_facts(plan) for plan in reversed(plans)],
            campaigns=campaigns,
            lines=[
                budget.line_event(budget_store.line_facts(line), currency=currency[plan.id])
                for plan in reversed(plans)
                for line in budget_store.list_lines(session=session, plan_id=plan.id)
            ],
            stages=[
                store.stage_event(stage)
                for campaign in campaigns
                for stage in store.list_stages(session=session, campaign_id=campaign.campaign_id)
            ],
            targets=[
                store.target_event(target)
                for campaign in campaigns
                for target in store.list_targets(session=session, campaign_id=campaign.campaign_id)
            ],
        )
        events += discount_usecases.limit_events(
            session=session, plan_ids=[plan.id for plan in reversed(plans)]
        )
        events += rule_usecases.rule_events(
            session=session, plan_ids=[plan.id for plan in reversed(plans)]
        )
        uow.publish(events)
    return len(events)
