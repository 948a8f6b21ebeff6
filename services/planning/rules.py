"""Reallocation rules of a plan: pure rules, no I/O.

A rule watches one KPI of a plan's live campaigns (its condition: comparison, threshold, the
share of its budget a campaign must have spent, how long the condition must hold) and moves a
share of a matching campaign's unspent budget (its action: to the best-scoring campaign of the
same line, or to a named campaign or line), by proposal or at once (its mode). Measurement
evaluates the rules from ``reallocation_rule.set``; here they are checked, versioned and
turned into events.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from decimal import Decimal

from services.planning.domain import BUDGET_ROLES
from shared.errors import DomainError, Forbidden
from shared.events.planning import ReallocationRuleRemoved, ReallocationRuleSet
from shared.reallocation import RULE_KPIS, RuleSpec

_SHARE_PLACES = Decimal("0.000001")
_CENT = Decimal("0.01")


RuleDraft = RuleSpec
"""What a rule says, before it belongs to a plan."""


@dataclass(frozen=True)
class RuleFacts(RuleDraft):
    """A plan's rule as stored and published."""

    rule_id: str = ""
    plan_id: str = ""
    is_default: bool = False
    version: int = 1


def check_role(*, role: str) -> None:
    """Only a CMO or admin changes reallocation rules (they move money)."""
    if role not in BUDGET_ROLES:
        raise Forbidden("only cmo or admin change reallocation rules")


def check(draft: RuleDraft) -> RuleDraft:
    """The draft with its shares kept to six decimals; a 422 naming the field when the KPI is
    unknown, the share is zero, or the target does not fit the action."""
    if draft.kpi not in RULE_KPIS:
        raise DomainError(f"unknown KPI {draft.kpi!r}", field="kpi", status_code=422)
    if draft.share <= 0:
        raise DomainError("the share moved must be above 0", field="share", status_code=422)
    if draft.action == "best_in_line" and draft.target_id is not None:
        raise DomainError(
            "best_in_line picks its recipient; give no target_id",
            field="target_id",
            status_code=422,
        )
    if draft.action != "best_in_line" and draft.recipient_threshold is not None:
        raise DomainError(
            f"action {draft.action!r} names its recipient; give no recipient_threshold",
            field="recipient_threshold",
            status_code=422,
        )
    if draft.action != "best_in_line" and draft.target_id is None:
        raise DomainError(
            f"action {draft.action!r} needs the target_id of the {draft.action} receiving",
            field="target_id",
            status_code=422,
        )
    return replace(
        draft,
        share=draft.share.quantize(_SHARE_PLACES),
        min_spend_share=draft.min_spend_share.quantize(_SHARE_PLACES),
        min_amount=draft.min_amount.quantize(_CENT),
    )


def create_rule(
    draft: RuleDraft, *, rule_id: str, plan_id: str, is_default: bool = False
) -> tuple[RuleFacts, list[ReallocationRuleSet]]:
    """A new rule of a plan (version 1) and its ``reallocation_rule.set``."""
    facts = RuleFacts(**vars(check(draft)), rule_id=rule_id, plan_id=plan_id, is_default=is_default)
    return facts, [rule_event(facts)]


def update_rule(
    before: RuleFacts, *, changes: dict[str, object]
) -> tuple[RuleFacts, list[ReallocationRuleSet]]:
    """The rule with ``changes`` applied (a new version); nothing happens when unchanged.
    Changing the action to ``best_in_line`` drops the target, to a named one the recipient
    threshold."""
    if changes.get("action") == "best_in_line" and "target_id" not in changes:
        changes = {**changes, "target_id": None}
    if changes.get("action") in ("campaign", "line") and "recipient_threshold" not in changes:
        changes = {**changes, "recipient_threshold": None}
    merged = replace(before, **changes)  # type: ignore[arg-type]
    checked = check(RuleDraft(**{name: getattr(merged, name) for name in _DRAFT_FIELDS}))
    after = replace(merged, **vars(checked))
    if after == before:
        return before, []
    after = replace(after, version=before.version + 1)
    return after, [rule_event(after)]


def remove_rule(facts: RuleFacts) -> list[ReallocationRuleRemoved]:
    """The ``reallocation_rule.removed`` of a rule."""
    return [ReallocationRuleRemoved(rule_id=facts.rule_id, plan_id=facts.plan_id)]


def rule_event(facts: RuleFacts) -> ReallocationRuleSet:
    """The ``reallocation_rule.set`` event of a rule's current state."""
    return ReallocationRuleSet(**vars(facts))


_DRAFT_FIELDS = tuple(f.name for f in fields(RuleSpec))
