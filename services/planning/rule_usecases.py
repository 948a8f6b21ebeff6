"""Use cases of reallocation rules: list, create, change and remove a plan's rules, and give a
new plan its default rule. Each change runs in one unit of work: the rule, an audit entry and
``reallocation_rule.set`` / ``reallocation_rule.removed``."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from services.planning import budget_store, rule_store, rules, store
from services.planning.rules import RuleDraft, RuleFacts
from services.planning.store import Store, UnitOfWork
from shared.auth import Principal
from shared.errors import DomainError, NotFound
from shared.events.planning import ReallocationRuleSet


def _plan(session: Session, plan_id: str) -> store.Plan:
    plan = store.get_plan(session=session, plan_id=plan_id)
    if plan is None:
        raise NotFound("plan", plan_id)
    return plan


def _rule(session: Session, rule_id: str) -> RuleFacts:
    facts = rule_store.get_rule(session=session, rule_id=rule_id)
    if facts is None:
        raise NotFound("reallocation rule", rule_id)
    return facts


def _check_target(session: Session, facts: RuleFacts) -> None:
    """A named campaign or line must belong to the rule's plan (422 on ``target_id``), and so
    must the line the rule is scoped to (422 on ``scope_line_id``)."""
    if facts.scope_line_id is not None:
        scope = budget_store.get_line(session=session, line_id=facts.scope_line_id)
        if scope is None or scope.plan_id != facts.plan_id:
            raise DomainError(
                f"line {facts.scope_line_id!r} is not part of plan {facts.plan_id!r}",
                field="scope_line_id",
                status_code=422,
            )
    if facts.action == "best_in_line" or facts.target_id is None:
        return
    owner: str | None = None
    if facts.action == "campaign":
        campaign = store.get_campaign(session=session, campaign_id=facts.target_id)
        owner = campaign.plan_id if campaign else None
    else:
        line = budget_store.get_line(session=session, line_id=facts.target_id)
        owner = line.plan_id if line else None
    if owner != facts.plan_id:
        raise DomainError(
            f"{facts.action} {facts.target_id!r} is not part of plan {facts.plan_id!r}",
            field="target_id",
            status_code=422,
        )


def list_rules(*, db: Store, plan_id: str) -> list[RuleFacts]:
    """A plan's rules, oldest (the default) first."""
    with db.reading() as session:
        _plan(session, plan_id)
        return rule_store.rules_of(session=session, plan_id=plan_id)


def get_rule(*, db: Store, rule_id: str) -> RuleFacts:
    """One rule (404 if unknown)."""
    with db.reading() as session:
        return _rule(session, rule_id)


def _save(
    uow: UnitOfWork, facts: RuleFacts, *, action: str, actor: Principal, before: object
) -> None:
    rule_store.save_rule(session=uow.session, facts=facts)
    uow.audit(
        entity_type="reallocation_rule",
        entity_id=facts.rule_id,
        plan_id=facts.plan_id,
        action=action,
        actor=actor,
        before=before,
        after=facts,
    )


def add_rule(
    uow: UnitOfWork,
    *,
    plan_id: str,
    draft: RuleDraft,
    principal: Principal,
    is_default: bool = False,
) -> RuleFacts:
    """Add a rule to a plan inside an open unit of work (plan creation adds its default)."""
    facts, events = rules.create_rule(
        draft, rule_id=str(uuid.uuid4()), plan_id=plan_id, is_default=is_default
    )
    _check_target(uow.session, facts)
    _save(uow, facts, action="created", actor=principal, before=None)
    uow.publish(list(events))
    return facts


def create_rule(*, db: Store, plan_id: str, draft: RuleDraft, principal: Principal) -> RuleFacts:
    """A new rule of a plan (cmo, admin)."""
    rules.check_role(role=principal.role)
    with db.unit_of_work() as uow:
        _plan(uow.session, plan_id)
        return add_rule(uow, plan_id=plan_id, draft=draft, principal=principal)


def update_rule(
    *, db: Store, rule_id: str, changes: dict[str, object], principal: Principal
) -> RuleFacts:
    """Change a rule (cmo, admin); unchanged values write nothing."""
    rules.check_role(role=principal.role)
    with db.unit_of_work() as uow:
        before = _rule(uow.session, rule_id)
        after, events = rules.update_rule(before, changes=changes)
        if not events:
            return after
        _check_target(uow.session, after)
        _save(uow, after, action="updated", actor=principal, before=before)
        uow.publish(list(events))
    return after


def delete_rule(*, db: Store, rule_id: str, principal: Principal) -> None:
    """Remove a rule (cmo, admin), the default one too."""
    rules.check_role(role=principal.role)
    with db.unit_of_work() as uow:
        before = _rule(uow.session, rule_id)
        rule_store.delete_rule(session=uow.session, rule_id=rule_id)
        uow.audit(
            entity_type="reallocation_rule",
            entity_id=rule_id,
            plan_id=before.plan_id,
            action="removed",
            actor=principal,
            before=before,
        )
        uow.publish(list(rules.remove_rule(before)))


def rule_events(*, session: Session, plan_ids: list[str]) -> list[ReallocationRuleSet]:
    """The ``reallocation_rule.set`` events of every rule of these plans (for a republish)."""
    return [
        rules.rule_event(facts)
        for plan_id in plan_ids
        for facts in rule_store.rules_of(session=session, plan_id=plan_id)
    ]
