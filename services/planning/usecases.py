"""Planning use cases: load state, apply the domain rules, save state and events in one go."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, replace
from decimal import Decimal

from services.planning import approvals, budget, domain, store
from services.planning.budget import LineFacts
from services.planning.domain import BUDGET_ROLES, CampaignFacts, PlanFacts
from services.planning.store import Store
from shared.auth import Principal
from shared.errors import DomainError, Forbidden, NotFound
from shared.events.kpi import BudgetReallocationProposed
from shared.events.planning import (
    BudgetLineRemoved,
    CampaignChangeDecided,
    CampaignChangeRequested,
)
from shared.kpis import Direction
from shared.money import CurrencyNotConvertible, FxRates, cents


def _plan(uow: store.UnitOfWork, plan_id: str) -> store.Plan:
    plan = store.get_plan(session=uow.session, plan_id=plan_id)
    if plan is None:
        raise NotFound("plan", plan_id)
    return plan


def _campaign(
    uow: store.UnitOfWork, campaign_id: str, *, field: str | None = None
) -> store.Campaign:
    campaign = store.get_campaign(session=uow.session, campaign_id=campaign_id)
    if campaign is None:
        if field:
            raise DomainError(f"campaign {campaign_id!r} not found", field=field, status_code=422)
        raise NotFound("campaign", campaign_id)
    return campaign


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
) -> str:
    """Create a draft plan (``budget``: its cap, None = none); returns its id."""
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
    return facts.plan_id


def update_plan(
    *, db: Store, plan_id: str, changes: dict[str, object], principal: Principal
) -> None:
    """Change a plan's name, owner or budget cap."""
    with db.unit_of_work() as uow:
        plan = _plan(uow, plan_id)
        before = store.plan_facts(plan)
        after, events = domain.update_plan(
            before, store.budget_of(session=uow.session, plan=plan), changes, role=principal.role
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
        plan = _plan(uow, plan_id)
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
            _audit_campaign(uow, principal, "approved", was[facts.campaign_id], facts)
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
) -> str:
    """Add a draft campaign with its budget to a plan, drawing from ``line_id`` (None = from
    the plan itself); returns its id."""
    with db.unit_of_work() as uow:
        plan_row = _plan(uow, plan_id)
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
        )
        events = domain.plan_campaign(
            plan, store.budget_of(session=uow.session, plan=plan_row), facts
        )
        store.save_campaign(session=uow.session, facts=facts)
        _audit_campaign(uow, principal, "created", None, facts)
        uow.publish(events)
    return facts.campaign_id


def update_campaign(
    *, db: Store, campaign_id: str, changes: dict[str, object], principal: Principal
) -> str | None:
    """Change a campaign's attributes, budget or status. The budget, line or dates of an
    approved campaign changed by someone other than a CMO or admin wait as a change request
    (checked now, and again when decided; a newer one supersedes it); returns its id, if any."""
    with db.unit_of_work() as uow:
        row = _campaign(uow, campaign_id)
        plan_row = _plan(uow, row.plan_id)
        plan, before = store.plan_facts(plan_row), store.campaign_facts(row)
        plan_budget = store.budget_of(session=uow.session, plan=plan_row)
        changes = {key: value for key, value in changes.items() if getattr(before, key) != value}
        direct, requested = approvals.split_changes(before.status, changes, role=principal.role)
        after, events = domain.update_campaign(
            plan, plan_budget, before, direct, role=principal.role, changed_by=principal.subject
        )
        if events:
            store.save_campaign(session=uow.session, facts=after)
            action = after.status if set(direct) == {"status"} else "updated"
            _audit_campaign(uow, principal, action, before, after)
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
        row = _campaign(uow, request.campaign_id)
        plan_row = _plan(uow, row.plan_id)
        before = store.campaign_facts(row)
        after, events = domain.update_campaign(
            store.plan_facts(plan_row),
            store.budget_of(session=uow.session, plan=plan_row),
            before,
            approvals.from_text(json.loads(request.changes)),
            role=principal.role,
            changed_by=principal.subject,
        )
        store.save_campaign(session=uow.session, facts=after)
        _audit_campaign(uow, principal, "updated", before, after)
        _close_request(uow, principal, request, decision="accepted", reason=reason)
        uow.publish(events)
        return request.campaign_id


def change_status(
    *, db: Store, campaign_id: str, status: str, reason: str | None, principal: Principal
) -> None:
    """Submit, approve, reject (with a reason), start, pause, complete or cancel a campaign."""
    with db.unit_of_work() as uow:
        row = _campaign(uow, campaign_id)
        before = store.campaign_facts(row)
        after, events = domain.change_status(
            before, status=status, role=principal.role, changed_by=principal.subject, reason=reason
        )
        if not events:
            return
        store.save_campaign(session=uow.session, facts=after)
        _audit_campaign(uow, principal, status, before, after, reason=reason)
        uow.publish(events)


def _audit_campaign(
    uow: store.UnitOfWork,
    principal: Principal,
    action: str,
    before: CampaignFacts | None,
    after: CampaignFacts,
    *,
    reason: str | None = None,
) -> None:
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
        campaign = store.campaign_facts(_campaign(uow, campaign_id))
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
        campaign = store.campaign_facts(_campaign(uow, campaign_id))
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


def reallocate_budget(
    *,
    db: Store,
    from_campaign_id: str | None,
    to_campaign_id: str | None,
    amount: Decimal | None,
    reason: str | None,
    principal: Principal,
    proposal_id: str | None = None,
) -> str:
    """Move budget between two campaigns of a plan, by hand or by accepting an open proposal
    (whose campaigns, amount and reason fill what is not given); returns the reallocation id."""
    reallocation_id = str(uuid.uuid4())
    with db.unit_of_work() as uow:
        if proposal_id is not None:
            proposal = uow.session.get(store.ReallocationProposal, proposal_id)
            if proposal is None or proposal.status != "open":
                raise DomainError(
                    f"no open proposal {proposal_id!r}", field="proposal_id", status_code=422
                )
            for name, given, proposed in (
                ("from_campaign_id", from_campaign_id, proposal.from_campaign_id),
                ("to_campaign_id", to_campaign_id, proposal.to_campaign_id),
            ):
                if given is not None and given != proposed:
                    raise DomainError(
                        f"proposal {proposal_id!r} moves budget {name.split('_')[0]} campaign"
                        f" {proposed!r}, not {given!r}",
                        field=name,
                        status_code=422,
                    )
            from_campaign_id, to_campaign_id = proposal.from_campaign_id, proposal.to_campaign_id
            amount = proposal.amount if amount is None else amount
            reason = proposal.reason if reason is None else reason
            proposal.status = "accepted"
        for name, value in (
            ("from_campaign_id", from_campaign_id),
            ("to_campaign_id", to_campaign_id),
            ("amount", amount),
        ):
            if value is None:
                raise DomainError(
                    f"{name} is required without a proposal_id", field=name, status_code=422
                )
        assert from_campaign_id and to_campaign_id and amount is not None
        source = store.campaign_facts(_campaign(uow, from_campaign_id, field="from_campaign_id"))
        destination = store.campaign_facts(_campaign(uow, to_campaign_id, field="to_campaign_id"))
        source_after, destination_after, events = domain.reallocate_budget(
            source,
            destination,
            amount=amount,
            reason=reason,
            requested_by=principal.subject,
            reallocation_id=reallocation_id,
        )
        plan_budget = store.budget_of(
            session=uow.session, plan=_plan(uow, source.plan_id)
        ).without_draw(source.campaign_id)
        plan_budget.draws[source.campaign_id] = source_after.draw()
        budget.check_draw(plan_budget, destination_after.draw())
        store.save_campaign(session=uow.session, facts=source_after)
        store.save_campaign(session=uow.session, facts=destination_after)
        uow.session.add(
            store.BudgetReallocation(
                id=reallocation_id,
                plan_id=source.plan_id,
                from_campaign_id=from_campaign_id,
                to_campaign_id=to_campaign_id,
                amount=amount,
                reason=reason,
                requested_by=principal.subject,
                proposal_event_id=proposal_id,
            )
        )
        uow.audit(
            entity_type="reallocation",
            entity_id=reallocation_id,
            plan_id=source.plan_id,
            action="proposal_accepted" if proposal_id else "moved",
            actor=principal,
            after=events[0].model_dump(mode="json"),
            reason=reason,
        )
        _audit_campaign(uow, principal, "reallocated", source, source_after)
        _audit_campaign(uow, principal, "reallocated", destination, destination_after)
        uow.publish(events)
    return reallocation_id


def record_proposal(
    *,
    db: Store,
    event_id: uuid.UUID,
    proposal: BudgetReallocationProposed,
    proposed_at: dt.datetime,
) -> bool:
    """Keep a measurement proposal for the CMO (once per event); False if already recorded."""
    with db.unit_of_work() as uow:
        if not uow.claim(consumer="planning", event_id=event_id):
            return False
        uow.session.add(
            store.ReallocationProposal(
                event_id=str(event_id),
                plan_id=proposal.plan_id,
                from_campaign_id=proposal.from_campaign_id,
                to_campaign_id=proposal.to_campaign_id,
                amount=proposal.amount,
                reason=proposal.reason,
                proposed_at=proposed_at,
                status="open",
            )
        )
    return True


def republish_state(*, db: Store) -> int:
    """Queue every plan, campaign, stage and KPI target as events again (after the broker lost
    ``mrm.planning.v1``, so projections rebuild from planning's state); returns how many."""
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
                budget.line_event(store.line_facts(line), currency=currency[plan.id])
                for plan in reversed(plans)
                for line in store.list_lines(session=session, plan_id=plan.id)
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
        uow.publish(events)
    return len(events)


# --- budget lines ---------------------------------------------------------------------------


def _check_budget_role(plan: store.Plan, principal: Principal) -> None:
    if plan.status == "approved" and principal.role not in BUDGET_ROLES:
        raise Forbidden("only cmo or admin change the budget lines of an approved plan")


def _audit_line(
    uow: store.UnitOfWork,
    principal: Principal,
    action: str,
    before: LineFacts | None,
    after: LineFacts | None,
) -> None:
    line = after or before
    assert line is not None
    uow.audit(
        entity_type="budget_line",
        entity_id=line.line_id,
        plan_id=line.plan_id,
        action=action,
        actor=principal,
        before=before,
        after=after,
    )


def _line(uow: store.UnitOfWork, line_id: str) -> store.BudgetLine:
    line = store.get_line(session=uow.session, line_id=line_id)
    if line is None:
        raise NotFound("budget line", line_id)
    return line


def add_line(
    *, db: Store, plan_id: str, attributes: dict[str, object], principal: Principal
) -> str:
    """Add a budget line under the plan or one of its lines; returns its id."""
    line_id = str(uuid.uuid4())
    with db.unit_of_work() as uow:
        plan = _plan(uow, plan_id)
        _check_budget_role(plan, principal)
        facts = LineFacts(line_id=line_id, plan_id=plan_id, **attributes)  # type: ignore[arg-type]
        budget.check_line(store.budget_of(session=uow.session, plan=plan), facts)
        store.save_line(session=uow.session, facts=facts)
        _audit_line(uow, principal, "created", None, facts)
        uow.publish([budget.line_event(facts, currency=plan.currency)])
    return line_id


def update_line(
    *, db: Store, line_id: str, changes: dict[str, object], principal: Principal
) -> None:
    """Change a budget line's name, attributes, parent, amount or phasing (a new version)."""
    with db.unit_of_work() as uow:
        row = _line(uow, line_id)
        plan = _plan(uow, row.plan_id)
        _check_budget_role(plan, principal)
        before = store.line_facts(row)
        changes = {key: value for key, value in changes.items() if getattr(before, key) != value}
        if not changes:
            return
        after = replace(before, **changes, version=before.version + 1)  # type: ignore[arg-type]
        budget.check_line(store.budget_of(session=uow.session, plan=plan), after)
        store.save_line(session=uow.session, facts=after)
        _audit_line(uow, principal, "updated", before, after)
        uow.publish([budget.line_event(after, currency=plan.currency)])


def remove_line(*, db: Store, line_id: str, principal: Principal) -> None:
    """Remove a budget line that has no sub-lines and no campaigns."""
    with db.unit_of_work() as uow:
        row = _line(uow, line_id)
        plan = _plan(uow, row.plan_id)
        _check_budget_role(plan, principal)
        budget.check_removal(store.budget_of(session=uow.session, plan=plan), line_id)
        _audit_line(uow, principal, "removed", store.line_facts(row), None)
        uow.session.delete(row)
        uow.publish([BudgetLineRemoved(line_id=line_id, plan_id=plan.id)])


@dataclass(frozen=True)
class BudgetReport:
    """A plan's budget view: the tree, its months, and spend that could not be converted to
    the plan's currency (currency → amount)."""

    plan: store.Plan
    root: budget.NodeView
    months: list[str]
    unconverted: dict[str, Decimal]


def budget_report(*, db: Store, plan_id: str, fx: FxRates) -> BudgetReport:
    """The budget tree of a plan with planned, committed, actual and remaining money."""
    with db.reading() as session:
        plan = store.get_plan(session=session, plan_id=plan_id)
        if plan is None:
            raise NotFound("plan", plan_id)
        plan_budget = store.budget_of(session=session, plan=plan)
        spent = store.spend_by_month(session=session, campaign_ids=plan_budget.draws)
    actual: dict[str, dict[str, Decimal]] = {}
    unconverted: dict[str, Decimal] = {}
    for campaign_id, by_currency in spent.items():
        for currency, by_month in by_currency.items():
            for month, amount in by_month.items():
                try:
                    value = cents(fx.convert(amount, source=currency, target=plan.currency))
                except CurrencyNotConvertible:
                    unconverted[currency] = unconverted.get(currency, Decimal("0")) + amount
                    continue
                spent_in = actual.setdefault(campaign_id, {})
                spent_in[month] = spent_in.get(month, Decimal("0")) + value
    root, months = budget.budget_view(plan_budget, actual=actual)
    return BudgetReport(plan=plan, root=root, months=months, unconverted=unconverted)


def record_spend(*, db: Store, spends: list[store.SpendRow]) -> int:
    """Keep spend events for the budget view (each once); how many were new."""
    with db.unit_of_work() as uow:
        return store.record_spend(session=uow.session, spends=spends)
