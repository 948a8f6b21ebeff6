"""Budget use cases of planning: budget lines, the budget view with actual spend, moves of
budget between campaigns or lines (by hand, from a measurement proposal) and their history.
Each runs in one unit of work: state, audit entries and events together."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, replace
from decimal import Decimal

from services.planning import budget, budget_store, domain, store
from services.planning.domain import BUDGET_ROLES
from services.planning.store import Store
from services.planning.usecases import audit_campaign, load_campaign, load_plan
from shared.auth import Principal
from shared.budget import LineFacts, NodeView, budget_view
from shared.errors import DomainError, Forbidden, NotFound
from shared.events.kpi import BudgetReallocationProposed
from shared.events.planning import (
    BudgetLineReallocated,
    BudgetLineRemoved,
    ReallocationApplyFailed,
)
from shared.money import CurrencyNotConvertible, FxRates, cents


def reallocate_budget(
    *,
    db: Store,
    from_campaign_id: str | None,
    to_campaign_id: str | None,
    amount: Decimal | None,
    reason: str | None,
    principal: Principal,
    fx: FxRates,
    proposal_id: str | None = None,
    today: dt.date | None = None,
) -> str:
    """Move budget between two campaigns of a plan, by hand or by accepting an open proposal
    (whose campaigns, amount and reason fill what is not given; a proposal may also give a
    campaign's money back to a budget line), no more than the giving campaign's unspent
    budget; returns the reallocation id."""
    reallocation_id = str(uuid.uuid4())
    with db.unit_of_work() as uow:
        proposal = None
        if proposal_id is not None:
            proposal = _open_proposal(uow, proposal_id, from_campaign_id, to_campaign_id)
            from_campaign_id = proposal.from_campaign_id
            to_campaign_id = proposal.to_campaign_id or None
            amount = proposal.amount if amount is None else amount
            reason = proposal.reason if reason is None else reason
        for name, value in (
            ("from_campaign_id", from_campaign_id),
            ("to_campaign_id", to_campaign_id if proposal is None else ""),
            ("amount", amount),
        ):
            if value is None:
                raise DomainError(
                    f"{name} is required without a proposal_id", field=name, status_code=422
                )
        assert from_campaign_id and amount is not None
        move = _Move(
            reallocation_id=reallocation_id,
            from_campaign_id=from_campaign_id,
            to_campaign_id=to_campaign_id,
            to_line_id=proposal.to_line_id if proposal else None,
            amount=amount,
            reason=reason,
            proposal=proposal,
        )
        _make_move(uow, move, actor=principal, fx=fx, today=today or dt.datetime.now(dt.UTC).date())
        if proposal is not None:
            proposal.status = "accepted"
    return reallocation_id


def _open_proposal(
    uow: store.UnitOfWork, proposal_id: str, from_campaign_id: str | None, to_id: str | None
) -> store.ReallocationProposal:
    """An open proposal, whose campaigns the request may repeat but not change."""
    proposal = uow.session.get(store.ReallocationProposal, proposal_id)
    if proposal is None or proposal.status != "open":
        raise DomainError(f"no open proposal {proposal_id!r}", field="proposal_id", status_code=422)
    for name, given, proposed in (
        ("from_campaign_id", from_campaign_id, proposal.from_campaign_id),
        ("to_campaign_id", to_id, proposal.to_campaign_id or None),
    ):
        if given is not None and given != proposed:
            raise DomainError(
                f"proposal {proposal_id!r} moves budget {name.split('_')[0]}"
                f" {'campaign ' + repr(proposed) if proposed else 'no campaign'}, not {given!r}",
                field=name,
                status_code=422,
            )
    return proposal


@dataclass(frozen=True)
class _Move:
    """A campaign's budget moving to another campaign or back to a budget line."""

    reallocation_id: str
    from_campaign_id: str
    to_campaign_id: str | None
    to_line_id: str | None
    amount: Decimal
    reason: str | None
    proposal: store.ReallocationProposal | None = None
    rule_id: str | None = None


def _make_move(
    uow: store.UnitOfWork, move: _Move, *, actor: Principal, fx: FxRates, today: dt.date
) -> None:
    """Check a move against the giver's unspent budget and the budget tree, then write it:
    the campaigns (and lines), the history row, the audit entries and the events. Every check
    comes before the first write, so a refused move leaves the session as it was."""
    row = load_campaign(uow, move.from_campaign_id, field="from_campaign_id")
    source = store.campaign_facts(row)
    plan = load_plan(uow, source.plan_id)
    spent = _spent(uow, [source.campaign_id], currency=plan.currency, fx=fx)
    budget.check_unspent(
        budget=source.budget,
        spent=spent.get(source.campaign_id, Decimal("0.00")),
        amount=move.amount,
        name=f"campaign {source.name!r}",
    )
    plan_budget = budget_store.budget_of(session=uow.session, plan=plan).without_draw(
        source.campaign_id
    )
    requested_by = actor.subject
    campaigns: list[tuple[domain.CampaignFacts, domain.CampaignFacts]] = []
    lines: list[tuple[LineFacts, LineFacts]] = []
    if move.to_line_id is None:
        assert move.to_campaign_id is not None
        destination = store.campaign_facts(
            load_campaign(uow, move.to_campaign_id, field="to_campaign_id")
        )
        source_after, destination_after, events = domain.reallocate_budget(
            source,
            destination,
            amount=move.amount,
            reason=move.reason,
            requested_by=requested_by,
            reallocation_id=move.reallocation_id,
            rule_id=move.rule_id,
        )
        plan_budget.draws[source.campaign_id] = source_after.draw()
        budget.check_draw(plan_budget, destination_after.draw())
        campaigns = [(source, source_after), (destination, destination_after)]
    else:
        source_after, events = domain.return_to_line(
            source,
            line_id=move.to_line_id,
            amount=move.amount,
            reason=move.reason,
            requested_by=requested_by,
            reallocation_id=move.reallocation_id,
            rule_id=move.rule_id,
        )
        plan_budget.draws[source.campaign_id] = source_after.draw()
        if source.line_id is not None and source.line_id != move.to_line_id:
            giver, receiver = budget.move_between_lines(
                plan_budget,
                source_id=source.line_id,
                destination_id=move.to_line_id,
                amount=move.amount,
                actual=_spent(uow, list(plan_budget.draws), currency=plan.currency, fx=fx),
                today=today,
            )
            lines = [(plan_budget.lines[source.line_id], giver)]
            lines.append((plan_budget.lines[move.to_line_id], receiver))
        elif source.line_id is None:
            receiver = budget.move_into_line(
                plan_budget, line_id=move.to_line_id, amount=move.amount, today=today
            )
            lines = [(plan_budget.lines[move.to_line_id], receiver)]
        campaigns = [(source, source_after)]
    # the writes
    for before, after in campaigns:
        store.save_campaign(session=uow.session, facts=after)
        audit_campaign(uow, actor, "reallocated", before, after)
    for line_before, line_after in lines:
        budget_store.save_line(session=uow.session, facts=line_after)
        _audit_line(uow, actor, "reallocated", line_before, line_after)
        events.append(budget.line_event(line_after, currency=plan.currency))
    uow.session.add(
        store.BudgetReallocation(
            id=move.reallocation_id,
            plan_id=source.plan_id,
            from_campaign_id=source.campaign_id,
            to_campaign_id=move.to_campaign_id or "",
            to_line_id=move.to_line_id,
            amount=move.amount,
            reason=move.reason,
            requested_by=requested_by,
            proposal_event_id=move.proposal.event_id if move.proposal else None,
            rule_id=move.rule_id,
        )
    )
    action = "moved"
    if move.rule_id is not None:
        action = "rule_applied"
    elif move.proposal is not None:
        action = "proposal_accepted"
    uow.audit(
        entity_type="reallocation",
        entity_id=move.reallocation_id,
        plan_id=source.plan_id,
        action=action,
        actor=actor,
        after=events[0].model_dump(mode="json"),
        reason=move.reason,
    )
    uow.publish(events)


def spent_of(
    uow: store.UnitOfWork, campaign_ids: list[str], *, currency: str, fx: FxRates
) -> dict[str, Decimal]:
    """Each campaign's actual spend to date in ``currency`` (what has no rate is left out)."""
    return _spent(uow, campaign_ids, currency=currency, fx=fx)


def _spent(
    uow: store.UnitOfWork, campaign_ids: list[str], *, currency: str, fx: FxRates
) -> dict[str, Decimal]:
    actual, _ = _converted(
        budget_store.spend_by_month(session=uow.session, campaign_ids=campaign_ids),
        currency=currency,
        fx=fx,
    )
    return {
        campaign_id: sum(months.values(), Decimal("0.00")) for campaign_id, months in actual.items()
    }


def _converted(
    spent: dict[str, dict[str, dict[str, Decimal]]], *, currency: str, fx: FxRates
) -> tuple[dict[str, dict[str, Decimal]], dict[str, Decimal]]:
    """Spend (campaign → currency → month) in ``currency``: by campaign and month, and what
    could not be converted by currency."""
    actual: dict[str, dict[str, Decimal]] = {}
    unconverted: dict[str, Decimal] = {}
    for campaign_id, by_currency in spent.items():
        for source, by_month in by_currency.items():
            for month, amount in by_month.items():
                try:
                    value = cents(fx.convert(amount, source=source, target=currency))
                except CurrencyNotConvertible:
                    unconverted[source] = unconverted.get(source, Decimal("0")) + amount
                    continue
                spent_in = actual.setdefault(campaign_id, {})
                spent_in[month] = spent_in.get(month, Decimal("0")) + value
    return actual, unconverted


def move_between_lines(
    *,
    db: Store,
    from_line_id: str,
    to_line_id: str,
    amount: Decimal,
    reason: str | None,
    principal: Principal,
    fx: FxRates,
    today: dt.date,
) -> str:
    """Move budget from one line to another of the same plan (cmo, admin), no more than the
    giving line's unspent, unallocated money; returns the reallocation id."""
    reallocation_id = str(uuid.uuid4())
    with db.unit_of_work() as uow:
        row = uow.session.get(budget_store.BudgetLine, from_line_id)
        if row is None:
            raise DomainError(
                f"no budget line {from_line_id!r}", field="from_line_id", status_code=422
            )
        plan = load_plan(uow, row.plan_id)
        plan_budget = budget_store.budget_of(session=uow.session, plan=plan)
        source, destination = budget.move_between_lines(
            plan_budget,
            source_id=from_line_id,
            destination_id=to_line_id,
            amount=amount,
            actual=_spent(uow, list(plan_budget.draws), currency=plan.currency, fx=fx),
            today=today,
        )
        for before, after in (
            (plan_budget.lines[from_line_id], source),
            (plan_budget.lines[to_line_id], destination),
        ):
            budget_store.save_line(session=uow.session, facts=after)
            _audit_line(uow, principal, "reallocated", before, after)
        uow.session.add(
            store.BudgetReallocation(
                id=reallocation_id,
                plan_id=plan.id,
                from_campaign_id="",
                to_campaign_id="",
                from_line_id=from_line_id,
                to_line_id=to_line_id,
                amount=amount,
                reason=reason,
                requested_by=principal.subject,
            )
        )
        moved = BudgetLineReallocated(
            reallocation_id=reallocation_id,
            plan_id=plan.id,
            from_line_id=from_line_id,
            to_line_id=to_line_id,
            amount=amount,
            currency=plan.currency,
            from_amount=source.amount,
            to_amount=destination.amount,
            reason=reason,
            requested_by=principal.subject,
        )
        uow.audit(
            entity_type="reallocation",
            entity_id=reallocation_id,
            plan_id=plan.id,
            action="moved",
            actor=principal,
            after=moved.model_dump(mode="json"),
            reason=reason,
        )
        uow.publish(
            [
                moved,
                budget.line_event(source, currency=plan.currency),
                budget.line_event(destination, currency=plan.currency),
            ]
        )
    return reallocation_id


def record_proposal(
    *,
    db: Store,
    event_id: uuid.UUID,
    proposal: BudgetReallocationProposed,
    proposed_at: dt.datetime,
    fx: FxRates,
) -> str | None:
    """Keep a measurement proposal (once per event): it supersedes the open proposals for the
    same giving campaign; one made by a rule in ``apply`` mode is carried out at once, as
    its rule, with the checks a CMO's move gets (a refused one is kept as ``failed`` with
    the reason). Returns the proposal's status, None if already recorded."""
    with db.unit_of_work() as uow:
        if not uow.claim(consumer="planning", event_id=event_id):
            return None
        for older in store.open_proposals_from(
            session=uow.session, plan_id=proposal.plan_id, campaign_id=proposal.from_campaign_id
        ):
            older.status = "superseded"
        row = store.ReallocationProposal(
            event_id=str(event_id),
            plan_id=proposal.plan_id,
            from_campaign_id=proposal.from_campaign_id,
            to_campaign_id=proposal.to_campaign_id or "",
            to_line_id=proposal.to_line_id,
            amount=proposal.amount,
            reason=proposal.reason,
            proposed_at=proposed_at,
            status="open",
            rule_id=proposal.rule_id,
            mode=proposal.mode,
        )
        uow.session.add(row)
        if proposal.mode == "apply":
            move = _Move(
                reallocation_id=str(uuid.uuid4()),
                from_campaign_id=proposal.from_campaign_id,
                to_campaign_id=proposal.to_campaign_id,
                to_line_id=proposal.to_line_id,
                amount=proposal.amount,
                reason=proposal.reason,
                proposal=row,
                rule_id=proposal.rule_id,
            )
            rule = Principal(subject=f"rule:{proposal.rule_id or 'settings'}", role="admin")
            try:
                _make_move(uow, move, actor=rule, fx=fx, today=proposed_at.date())
            except DomainError as refused:
                row.status, row.note = "failed", str(refused)
                uow.publish([_apply_failed(uow, row, proposal)])
            else:
                row.status = "applied"
        return row.status


def _apply_failed(
    uow: store.UnitOfWork, row: store.ReallocationProposal, proposal: BudgetReallocationProposed
) -> ReallocationApplyFailed:
    plan = store.get_plan(session=uow.session, plan_id=proposal.plan_id)
    return ReallocationApplyFailed(
        proposal_id=row.event_id,
        plan_id=proposal.plan_id,
        rule_id=proposal.rule_id,
        from_campaign_id=proposal.from_campaign_id,
        to_campaign_id=proposal.to_campaign_id,
        to_line_id=proposal.to_line_id,
        amount=proposal.amount,
        currency=plan.currency if plan else None,
        reason=proposal.reason,
        note=row.note or "",
    )


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


def _line(uow: store.UnitOfWork, line_id: str) -> budget_store.BudgetLine:
    line = budget_store.get_line(session=uow.session, line_id=line_id)
    if line is None:
        raise NotFound("budget line", line_id)
    return line


def add_line(
    *, db: Store, plan_id: str, attributes: dict[str, object], principal: Principal
) -> str:
    """Add a budget line under the plan or one of its lines; returns its id."""
    line_id = str(uuid.uuid4())
    with db.unit_of_work() as uow:
        plan = load_plan(uow, plan_id)
        _check_budget_role(plan, principal)
        facts = LineFacts(line_id=line_id, plan_id=plan_id, **attributes)  # type: ignore[arg-type]
        budget.check_line(budget_store.budget_of(session=uow.session, plan=plan), facts)
        budget_store.save_line(session=uow.session, facts=facts)
        _audit_line(uow, principal, "created", None, facts)
        uow.publish([budget.line_event(facts, currency=plan.currency)])
    return line_id


def update_line(
    *, db: Store, line_id: str, changes: dict[str, object], principal: Principal
) -> None:
    """Change a budget line's name, attributes, parent, amount or phasing (a new version)."""
    with db.unit_of_work() as uow:
        row = _line(uow, line_id)
        plan = load_plan(uow, row.plan_id)
        _check_budget_role(plan, principal)
        before = budget_store.line_facts(row)
        changes = {key: value for key, value in changes.items() if getattr(before, key) != value}
        if not changes:
            return
        after = replace(before, **changes, version=before.version + 1)  # type: ignore[arg-type]
        budget.check_line(budget_store.budget_of(session=uow.session, plan=plan), after)
        budget_store.save_line(session=uow.session, facts=after)
        _audit_line(uow, principal, "updated", before, after)
        uow.publish([budget.line_event(after, currency=plan.currency)])


def remove_line(*, db: Store, line_id: str, principal: Principal) -> None:
    """Remove a budget line that has no sub-lines and no campaigns."""
    with db.unit_of_work() as uow:
        row = _line(uow, line_id)
        plan = load_plan(uow, row.plan_id)
        _check_budget_role(plan, principal)
        budget.check_removal(budget_store.budget_of(session=uow.session, plan=plan), line_id)
        _audit_line(uow, principal, "removed", budget_store.line_facts(row), None)
        uow.session.delete(row)
        uow.publish([BudgetLineRemoved(line_id=line_id, plan_id=plan.id)])


@dataclass(frozen=True)
class BudgetReport:
    """A plan's budget view: the tree, its months, and spend that could not be converted to
    the plan's currency (currency → amount)."""

    plan: store.Plan
    root: NodeView
    months: list[str]
    unconverted: dict[str, Decimal]


def budget_report(*, db: Store, plan_id: str, fx: FxRates) -> BudgetReport:
    """The budget tree of a plan with planned, committed, actual and remaining money."""
    with db.reading() as session:
        plan = store.get_plan(session=session, plan_id=plan_id)
        if plan is None:
            raise NotFound("plan", plan_id)
        plan_budget = budget_store.budget_of(session=session, plan=plan)
        spent = budget_store.spend_by_month(session=session, campaign_ids=plan_budget.draws)
    actual, unconverted = _converted(spent, currency=plan.currency, fx=fx)
    root, months = budget_view(plan_budget, actual=actual)
    return BudgetReport(plan=plan, root=root, months=months, unconverted=unconverted)


def record_spend(*, db: Store, spends: list[budget_store.SpendRow]) -> int:
    """Keep spend events for the budget view (each once); how many were new."""
    with db.unit_of_work() as uow:
        return budget_store.record_spend(session=uow.session, spends=spends)
