"""A plan's reallocation rules evaluated against its campaigns' KPIs: pure, no I/O.

Each enabled rule watches every live campaign (approved or active) of its scope (a budget
line and the lines beneath it, or the whole plan) that has spent the rule's
``min_spend_share`` of its budget. When the campaign's KPI meets the condition — and has met it
for ``hold_s`` seconds — the rule *fires* for that campaign, the donor: ``share`` of its
unspent budget (budget − spend) goes to a recipient, by a proposal that planning keeps for a
CMO or applies at once (``mode``). The recipient is the best campaign of the donor's budget
line scoring at least ``recipient_threshold`` (highest KPI for a ``lt``/``le`` condition,
lowest for ``gt``/``ge``; several donors may pick the same one), or the campaign or line the
rule names.

A rule fires once per *episode* of its condition for a donor: the episode ends when the KPI is
``hysteresis`` past the threshold on the good side (or the campaign is no longer live); the
next time the condition holds is a new episode. Nothing fires while there is no recipient or
the amount is below ``min_amount``; the episode waits for one.

The state is two sets of keys per plan, kept by the caller: ``fired:<rule>:<donor>`` (an
episode that has fired) and ``hold:<rule>:<donor>`` (the condition holding since the stored
time, not yet long enough). ``evaluate`` returns the proposals and the keys whose state
changed; the same inputs and the returned state give no new proposal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from services.measurement.domain import has_evidence
from shared.events.kpi import BudgetReallocationProposed
from shared.money import cents
from shared.reallocation import RuleSpec, cleared, holds, low_is_bad

LIVE_STATUSES: frozenset[str] = frozenset({"approved", "active"})
SETTINGS_RULE = "settings"
"""The key of the settings' rule, which watches a plan measurement knows no rule of."""
_CENT = Decimal("0.01")
_SYMBOL = {"lt": "<", "le": "≤", "gt": ">", "ge": "≥"}


@dataclass(frozen=True)
class PlanRule:
    """A rule as measurement evaluates it: its id (None for the settings' rule) and what it
    says."""

    spec: RuleSpec
    rule_id: str | None = None

    @property
    def key(self) -> str:
        """The rule's part of a state key."""
        return self.rule_id or SETTINGS_RULE


@dataclass(frozen=True)
class CampaignStanding:
    """What the rules need to know of one campaign of a plan."""

    campaign_id: str
    status: str | None
    kpis: Mapping[str, Decimal | None]
    """KPI values by name, ``ckpi`` included (None where undefined)."""
    spend: Decimal | None
    budget: Decimal | None
    currency: str | None = None
    name: str | None = None
    line_id: str | None = None

    @property
    def label(self) -> str:
        """How a proposal's reason names the campaign: its name, else its id."""
        return f'"{self.name}"' if self.name else self.campaign_id

    @property
    def remaining(self) -> Decimal:
        """Budget not spent yet (never negative)."""
        return max((self.budget or Decimal(0)) - (self.spend or Decimal(0)), Decimal(0))

    @property
    def live(self) -> bool:
        """Approved or active: money may still move to or from it."""
        return self.status in LIVE_STATUSES


@dataclass
class Outcome:
    """One evaluation of a plan: new proposals, each with the state key of its episode, and
    the state keys that changed (key → on)."""

    proposals: list[tuple[BudgetReallocationProposed, str]] = field(default_factory=list)
    changes: dict[str, bool] = field(default_factory=dict)


def fired_key(rule: PlanRule, campaign_id: str) -> str:
    """The state key of a rule's episode for a donor."""
    return f"fired:{rule.key}:{campaign_id}"


def hold_key(rule: PlanRule, campaign_id: str) -> str:
    """The state key of a condition holding, not yet for ``hold_s``."""
    return f"hold:{rule.key}:{campaign_id}"


def _value(campaign: CampaignStanding, rule: RuleSpec) -> Decimal | None:
    value = campaign.kpis.get(rule.kpi)
    return None if value is None else Decimal(value)


def _judged(campaign: CampaignStanding, rule: RuleSpec) -> Decimal | None:
    """The campaign's KPI when the rule may judge it (live, enough spent), else None."""
    if not campaign.live or not has_evidence(
        spend=campaign.spend, budget=campaign.budget, min_share=rule.min_spend_share
    ):
        return None
    return _value(campaign, rule)


def _best_in_line(
    donor: CampaignStanding, campaigns: Sequence[CampaignStanding], rule: RuleSpec
) -> CampaignStanding | None:
    higher = low_is_bad(rule.comparison)
    scored: list[tuple[Decimal, CampaignStanding]] = []
    for campaign in campaigns:
        value = _judged(campaign, rule)
        if (
            value is None
            or campaign.campaign_id == donor.campaign_id
            or campaign.line_id != donor.line_id
            or campaign.currency != donor.currency
            or holds(value=value, comparison=rule.comparison, threshold=rule.threshold)
        ):
            continue
        floor = rule.recipient_threshold
        if floor is not None and (value < floor if higher else value > floor):
            continue
        scored.append((value, campaign))
    if not scored:
        return None
    scored.sort(key=lambda pair: (-pair[0] if higher else pair[0], pair[1].campaign_id))
    return scored[0][1]


def _named_campaign(
    donor: CampaignStanding, campaigns: Sequence[CampaignStanding], rule: RuleSpec
) -> CampaignStanding | None:
    target = next((c for c in campaigns if c.campaign_id == rule.target_id), None)
    if (
        target is None
        or target.campaign_id == donor.campaign_id
        or target.currency != donor.currency
        or target.status in ("completed", "cancelled", "rejected")
    ):
        return None
    return target


def _proposal(
    plan_id: str,
    rule: PlanRule,
    donor: CampaignStanding,
    value: Decimal,
    campaigns: Sequence[CampaignStanding],
    line_names: Mapping[str, str],
) -> BudgetReallocationProposed | None:
    spec = rule.spec
    amount = cents(donor.remaining * spec.share)
    if amount < max(spec.min_amount, _CENT):
        return None
    recipient: CampaignStanding | None = None
    if spec.action == "best_in_line":
        recipient = _best_in_line(donor, campaigns, spec)
    elif spec.action == "campaign":
        recipient = _named_campaign(donor, campaigns, spec)
    if spec.action != "line" and recipient is None:
        return None
    return BudgetReallocationProposed(
        plan_id=plan_id,
        from_campaign_id=donor.campaign_id,
        to_campaign_id=recipient.campaign_id if recipient else None,
        to_line_id=spec.target_id if spec.action == "line" else None,
        amount=amount,
        reason=_reason(rule, donor, value, recipient, line_names),
        rule_id=rule.rule_id,
        mode=spec.mode,
    )


def _reason(
    rule: PlanRule,
    donor: CampaignStanding,
    value: Decimal,
    recipient: CampaignStanding | None,
    line_names: Mapping[str, str],
) -> str:
    spec = rule.spec
    kpi = "CKPI" if spec.kpi == "ckpi" else spec.kpi.upper()
    held = f" for {spec.hold_s} s" if spec.hold_s else ""
    remaining = " ".join(filter(None, (f"{donor.remaining:,.2f}", donor.currency)))
    if recipient is None:
        name = line_names.get(spec.target_id or "")
        to = f'the budget line "{name}"' if name else f"budget line {spec.target_id}"
    else:
        recipient_value = _value(recipient, spec)
        to = f"campaign {recipient.label}"
        if spec.action == "best_in_line" and recipient_value is not None:
            to += f" ({kpi} {_plain(recipient_value)}, the best of its line)"
    share = f"{_plain(spec.share * 100)} %"
    return (
        f"campaign {donor.label} has {kpi} {_plain(value)} ({_SYMBOL[spec.comparison]}"
        f" {_plain(spec.threshold)}){held}: move {share} of the {remaining} not yet spent to {to}"
    )


def _plain(value: Decimal) -> str:
    """A number as people write it: 90, 12.5, -20.03 (no trailing zeros, no exponent)."""
    return f"{value.normalize():f}"


def _in_scope(line_id: str | None, scope: str | None, parents: Mapping[str, str | None]) -> bool:
    """Whether a campaign of ``line_id`` is in a rule's scope: the line ``scope`` or a line
    beneath it (every campaign when the rule has no scope)."""
    if scope is None:
        return True
    seen: set[str] = set()
    while line_id is not None and line_id not in seen:
        if line_id == scope:
            return True
        seen.add(line_id)
        line_id = parents.get(line_id)
    return False


def evaluate(
    *,
    plan_id: str,
    campaigns: Sequence[CampaignStanding],
    rules: Iterable[PlanRule],
    fired: Iterable[str],
    holding: Mapping[str, int],
    now_us: int,
    parents: Mapping[str, str | None] | None = None,
    line_names: Mapping[str, str] | None = None,
) -> Outcome:
    """The proposals a plan's rules make now, and the state keys that change.

    ``fired`` holds the keys of episodes that have fired and not ended; ``holding`` the keys
    of conditions holding, with when they began (µs since the epoch); ``now_us`` is now;
    ``parents`` the plan's line tree (line → parent), for rules scoped to a line;
    ``line_names`` how reasons name the lines."""
    fired = set(fired)
    parents = parents or {}
    outcome = Outcome()
    for rule in rules:
        spec = rule.spec
        if not spec.enabled:
            continue
        for donor in sorted(campaigns, key=lambda c: c.campaign_id):
            if not _in_scope(donor.line_id, spec.scope_line_id, parents):
                continue
            on, waiting = fired_key(rule, donor.campaign_id), hold_key(rule, donor.campaign_id)
            value = _judged(donor, spec)
            if on in fired:
                over = not donor.live or (
                    value is not None
                    and cleared(
                        value=value,
                        comparison=spec.comparison,
                        threshold=spec.threshold,
                        hysteresis=spec.hysteresis,
                    )
                )
                if over:
                    outcome.changes[on] = False
                continue
            if value is None or not holds(
                value=value, comparison=spec.comparison, threshold=spec.threshold
            ):
                if waiting in holding:
                    outcome.changes[waiting] = False
                continue
            since = holding.get(waiting, now_us)
            if now_us - since < spec.hold_s * 1_000_000:
                if waiting not in holding:
                    outcome.changes[waiting] = True
                continue
            proposal = _proposal(plan_id, rule, donor, value, campaigns, line_names or {})
            if proposal is None:
                continue
            outcome.proposals.append((proposal, on))
            outcome.changes[on] = True
            if waiting in holding:
                outcome.changes[waiting] = False
    return outcome
