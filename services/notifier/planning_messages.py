"""What people read about sales targets, discount limits and planning approvals — pure text,
no I/O. ``domain.compose`` wraps :func:`content` in the greeting and the event footer."""

from __future__ import annotations

from services.notifier.directory import Directory
from services.notifier.wording import (
    campaign_label,
    line_label,
    money,
    number,
    pct,
    plan_label,
    plan_suffix,
    receiver_label,
    share,
    unit_label,
    when,
)
from shared.events.discounts import DiscountLimitExceeded, DiscountThresholdCrossed
from shared.events.kpi import SalesTargetAtRisk, SalesTargetRecovered
from shared.events.planning import (
    BudgetReallocated,
    CampaignChangeDecided,
    CampaignChangeRequested,
    CampaignStatusChanged,
    DiscountScope,
    ReallocationApplyFailed,
    SalesTargetProposalDecided,
    SalesTargetProposed,
)

PlanningMessageEvent = (
    SalesTargetAtRisk
    | SalesTargetRecovered
    | DiscountThresholdCrossed
    | DiscountLimitExceeded
    | CampaignStatusChanged
    | CampaignChangeRequested
    | CampaignChangeDecided
    | SalesTargetProposed
    | SalesTargetProposalDecided
    | BudgetReallocated
    | ReallocationApplyFailed
)
EVENTS = (
    SalesTargetAtRisk,
    SalesTargetRecovered,
    DiscountThresholdCrossed,
    DiscountLimitExceeded,
    CampaignStatusChanged,
    CampaignChangeRequested,
    CampaignChangeDecided,
    SalesTargetProposed,
    SalesTargetProposalDecided,
    BudgetReallocated,
    ReallocationApplyFailed,
)
"""The causes whose subject and body this module writes."""


def content(data: PlanningMessageEvent, *, directory: Directory) -> tuple[str, list[str]]:
    """The subject and the body's lines of one of :data:`EVENTS`."""
    if isinstance(data, SalesTargetAtRisk | SalesTargetRecovered):
        return _sales_target(data, directory)
    if isinstance(data, DiscountThresholdCrossed):
        return _promo_fund(data, directory)
    if isinstance(data, DiscountLimitExceeded):
        return _over_limit(data, directory)
    if isinstance(data, CampaignStatusChanged):
        return _rejected(data, directory)
    if isinstance(data, CampaignChangeRequested):
        return _change_requested(data, directory)
    if isinstance(data, CampaignChangeDecided):
        return _change_decided(data, directory)
    if isinstance(data, SalesTargetProposed):
        return _proposed(data, directory)
    if isinstance(data, BudgetReallocated):
        return _moved_by_rule(data, directory)
    if isinstance(data, ReallocationApplyFailed):
        return _apply_failed(data, directory)
    return _proposal_decided(data, directory)


def _moved_by_rule(data: BudgetReallocated, directory: Directory) -> tuple[str, list[str]]:
    source = campaign_label(data.from_campaign_id, directory)
    target = receiver_label(
        campaign_id=data.to_campaign_id, line_id=data.to_line_id, directory=directory
    )
    amount = money(data.amount, data.currency)
    plan = plan_label(data.plan_id, directory)
    return (
        f"Budget moved by a reallocation rule in {plan}: {amount} from {source} to {target}",
        [
            f"The reallocation rule {data.rule_id} moved {amount} from {source} "
            f"(now {money(data.from_budget, data.currency)}) to {target} in {plan}.",
            _reason(data.reason),
            "Change or disable the rule in planning to stop such moves.",
        ],
    )


def _apply_failed(data: ReallocationApplyFailed, directory: Directory) -> tuple[str, list[str]]:
    source = campaign_label(data.from_campaign_id, directory)
    target = receiver_label(
        campaign_id=data.to_campaign_id, line_id=data.to_line_id, directory=directory
    )
    amount = money(data.amount, data.currency or "")
    plan = plan_label(data.plan_id, directory)
    return (
        f"A reallocation rule could not move {amount} from {source} in {plan}",
        [
            f"The reallocation rule {data.rule_id} fired: move {amount} from {source} to "
            f"{target} in {plan}. Planning refused the move, so nothing changed:",
            data.note,
            _reason(data.reason),
            f"Move the budget by hand, or change the rule; the proposal is {data.proposal_id}.",
        ],
    )


def _sales_target(
    data: SalesTargetAtRisk | SalesTargetRecovered, directory: Directory
) -> tuple[str, list[str]]:
    unit = unit_label(data.unit_id, directory)
    brand = f"brand {data.brand}" if data.brand else "all brands"
    target = f"the sales target of {unit} for {data.period} ({brand})"
    forecast = (
        f"Forecast to the period's end: {money(data.forecast, data.currency)}, "
        f"{share(data.forecast_share)} of the {money(data.target, data.currency)} target "
        f"(alert threshold {share(data.threshold)})."
    )
    progress = (
        f"Sales so far: {money(data.sales, data.currency)} as of {when(data.as_of)}; "
        f"the period runs from {data.period_start} to {data.period_end}."
    )
    if isinstance(data, SalesTargetAtRisk):
        return (
            f"Sales target at risk: {unit}, {data.period}",
            [f"At the current run rate {target} will be missed.", forecast, progress],
        )
    return (
        f"Sales target back on track: {unit}, {data.period}",
        [f"{target[0].upper()}{target[1:]} is back on track.", forecast, progress],
    )


def _scope_label(kind: DiscountScope, scope_id: str, plan_id: str, directory: Directory) -> str:
    if kind == "campaign":
        campaign = campaign_label(scope_id, directory)
        return f"the campaign {campaign}{plan_suffix(scope_id, directory)}"
    if kind == "line":
        return (
            f"the budget line {line_label(scope_id, directory)} of {plan_label(plan_id, directory)}"
        )
    return f"the plan {plan_label(plan_id, directory)}"


def _promo_fund(data: DiscountThresholdCrossed, directory: Directory) -> tuple[str, list[str]]:
    scope = _scope_label(data.scope_kind, data.scope_id, data.plan_id, directory)
    left = data.promo_fund - data.used
    status = (
        f"Remaining: {money(left, data.currency)}."
        if left > 0
        else f"The fund is used up ({money(-left, data.currency)} beyond it)."
    )
    return (
        f"Promo fund alert: {scope} has used {data.threshold} % of its promo fund",
        [
            f"Discounts given under {scope} total {money(data.used, data.currency)} of its "
            f"{money(data.promo_fund, data.currency)} promo fund "
            f"({pct(data.used, data.promo_fund)}).",
            status,
        ],
    )


def _over_limit(data: DiscountLimitExceeded, directory: Directory) -> tuple[str, list[str]]:
    campaign = campaign_label(data.campaign_id, directory)
    whose = _scope_label(data.scope_kind, data.scope_id, data.plan_id, directory)
    return (
        f"Discount over limit: order {data.order_id} of {campaign} got {share(data.rate)} "
        f"(maximum {share(data.max_discount_rate)})",
        [
            f"Order {data.order_id} of the campaign {campaign}"
            f"{plan_suffix(data.campaign_id, directory)} was given a discount of "
            f"{money(data.discount_amount, data.currency)} ({share(data.rate)}), above the "
            f"maximum rate of {share(data.max_discount_rate)} set on {whose}.",
            f"Discount beyond the maximum: {money(data.amount_over, data.currency)}.",
        ],
    )


def _rejected(data: CampaignStatusChanged, directory: Directory) -> tuple[str, list[str]]:
    campaign = campaign_label(data.campaign_id, directory)
    by = f" by {data.changed_by}" if data.changed_by else ""
    return (
        f"Campaign rejected: {campaign}",
        [
            f"The campaign {campaign}{plan_suffix(data.campaign_id, directory)} was rejected{by}.",
            _reason(data.reason),
            "Rework it as a draft and submit it again.",
        ],
    )


def _change_requested(data: CampaignChangeRequested, directory: Directory) -> tuple[str, list[str]]:
    campaign = campaign_label(data.campaign_id, directory)
    changes = [
        f"- {field.replace('_', ' ')}: {value if value is not None else '(none)'}"
        for field, value in sorted(data.changes.items())
    ]
    return (
        f"Change request for {campaign} awaits your decision",
        [
            f"{data.requested_by} asks to change the approved campaign {campaign}"
            f"{plan_suffix(data.campaign_id, directory)}:",
            *changes,
            f"Accept or reject request {data.request_id} in planning; the approved values "
            "stand meanwhile.",
        ],
    )


def _change_decided(data: CampaignChangeDecided, directory: Directory) -> tuple[str, list[str]]:
    campaign = campaign_label(data.campaign_id, directory)
    outcome = {
        "accepted": f"accepted by {data.decided_by}; the campaign now has the requested values",
        "rejected": f"rejected by {data.decided_by}; the approved values stand",
        "superseded": "superseded by a newer request for the same campaign",
    }[data.decision]
    lines = [
        f"The change request {data.request_id} for the campaign {campaign}"
        f"{plan_suffix(data.campaign_id, directory)} was {outcome}."
    ]
    if data.decision == "rejected":
        lines.append(_reason(data.reason))
    return f"Change request {data.decision}: {campaign}", lines


def _proposed(data: SalesTargetProposed, directory: Directory) -> tuple[str, list[str]]:
    unit = unit_label(data.unit_id, directory)
    comment = f"Comment: {data.comment}" if data.comment else "No comment was given."
    return (
        f"Sales target proposal from {unit}: {number(data.amount)}",
        [
            f"{data.proposed_by} proposes {number(data.amount)} as the figure of target "
            f"{data.target_id} of {unit}.",
            comment,
            f"Accept or reject proposal {data.proposal_id} in planning.",
        ],
    )


def _proposal_decided(
    data: SalesTargetProposalDecided, directory: Directory
) -> tuple[str, list[str]]:
    unit = unit_label(data.unit_id, directory)
    lines = [
        f"The proposed figure {data.proposal_id} for target {data.target_id} of {unit} was "
        f"{data.decision} by {data.decided_by}."
    ]
    if data.decision == "rejected":
        lines.append(_reason(data.reason))
    return f"Sales target proposal {data.decision}: {unit}", lines


def _reason(reason: str | None) -> str:
    return f"Reason: {reason}" if reason else "No reason was given."
