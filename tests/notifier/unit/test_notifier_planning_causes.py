"""Routing and texts of the sales-target, discount and approval causes (pure, no I/O)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace
from decimal import Decimal

import pytest

from services.notifier import domain
from shared.events.discounts import DiscountLimitExceeded, DiscountThresholdCrossed
from shared.events.envelope import EventData
from shared.events.kpi import SalesTargetAtRisk, SalesTargetRecovered
from shared.events.planning import (
    BudgetReallocated,
    CampaignChangeDecided,
    CampaignChangeRequested,
    CampaignStatusChanged,
    DiscountLimitSet,
    ReallocationApplyFailed,
    SalesTargetProposalDecided,
    SalesTargetProposed,
    SalesTargetSet,
    SalesUnitSet,
)

NOW = dt.datetime(2027, 2, 14, 9, 0, tzinfo=dt.UTC)


def unit(unit_id: str, owner: str, parent: str | None, kind: str, name: str) -> domain.UnitInfo:
    return domain.UnitInfo(unit_id=unit_id, parent_id=parent, kind=kind, name=name, owner=owner)


DIRECTORY = domain.Directory(
    plans={"p1": domain.PlanInfo(plan_id="p1", name="Plan 2027", owner="carl", currency="EUR")},
    campaigns={
        "c1": domain.CampaignInfo(
            campaign_id="c1", plan_id="p1", name="Spring Sale", owner="ann", version=1
        )
    },
    units={
        "co": unit("co", "cmo", None, "company", "Acme"),
        "north": unit("north", "nina", "co", "region", "North"),
        "rep1": unit("rep1", "rick", "north", "rep", "Rick Rep"),
    },
    change_requests={
        "r1": domain.ChangeRequestInfo(request_id="r1", campaign_id="c1", requested_by="mia")
    },
)

WITH_LINE = replace(
    DIRECTORY,
    lines={
        "l7": domain.LineInfo(line_id="l7", plan_id="p1", name="Acme Pro at PartnerNet", version=2)
    },
)


def cause(data: EventData) -> domain.Cause:
    return domain.Cause(
        event_id=uuid.uuid4(), event_type=data.event_type, occurred_at=NOW, data=data
    )


def at_risk(unit_id: str = "north", recovered: bool = False) -> SalesTargetAtRisk:
    kind = SalesTargetRecovered if recovered else SalesTargetAtRisk
    return kind(
        target_id="t1",
        unit_id=unit_id,
        period="2027-Q1",
        period_start=dt.date(2027, 1, 1),
        period_end=dt.date(2027, 3, 31),
        target=Decimal("100000"),
        currency="EUR",
        sales=Decimal("36000"),
        forecast=Decimal("72000"),
        forecast_share=Decimal("0.72"),
        threshold=Decimal("0.9"),
        as_of=NOW,
    )


def fund(campaign_id: str | None = "c1", threshold: int = 80) -> DiscountThresholdCrossed:
    return DiscountThresholdCrossed(
        scope_kind="campaign" if campaign_id else "line",
        scope_id=campaign_id or "l7",
        plan_id="p1",
        campaign_id=campaign_id,
        threshold=threshold,  # type: ignore[arg-type]
        used=Decimal("4000"),
        promo_fund=Decimal("5000"),
        currency="EUR",
    )


def over_limit(line_id: str | None = None) -> DiscountLimitExceeded:
    return DiscountLimitExceeded(
        order_id="o-42",
        campaign_id="c1",
        plan_id="p1",
        scope_kind="line" if line_id else "plan",
        scope_id=line_id or "p1",
        rate=Decimal("0.3"),
        max_discount_rate=Decimal("0.2"),
        discount_amount=Decimal("300"),
        amount_over=Decimal("100"),
        currency="EUR",
    )


def status(new: str, reason: str | None = None) -> CampaignStatusChanged:
    return CampaignStatusChanged(
        campaign_id="c1",
        plan_id="p1",
        status=new,  # type: ignore[arg-type]
        previous_status="submitted",
        version=3,
        changed_by="cmo",
        reason=reason,
    )


def decided(request_id: str = "r1", decision: str = "rejected") -> CampaignChangeDecided:
    return CampaignChangeDecided(
        request_id=request_id,
        campaign_id="c1",
        plan_id="p1",
        decision=decision,  # type: ignore[arg-type]
        decided_by="carl",
        reason="No budget left",
    )


def proposed(unit_id: str = "rep1") -> SalesTargetProposed:
    return SalesTargetProposed(
        proposal_id="pr1",
        target_id="t2",
        unit_id=unit_id,
        amount=Decimal("80000"),
        comment="Two key accounts left",
        proposed_by="rick",
    )


MOVED_TO_LINE = BudgetReallocated(
    reallocation_id="ra1",
    plan_id="p1",
    from_campaign_id="c1",
    to_line_id="l7",
    amount=Decimal("304.31"),
    currency="EUR",
    from_budget=Decimal("9695.69"),
    reason="CKPI 62 below 80",
    requested_by="rule:rr1",
    rule_id="rr1",
)
REQUESTED = CampaignChangeRequested(
    request_id="r2",
    campaign_id="c1",
    plan_id="p1",
    changes={"budget": "12000.00", "end_date": "2027-06-30"},
    requested_by="mia",
)
PROPOSAL_DECIDED = SalesTargetProposalDecided(
    proposal_id="pr1",
    target_id="t2",
    unit_id="rep1",
    decision="rejected",
    decided_by="nina",
    reason="The region's total is fixed",
)


# --- routing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (at_risk(), ("nina",)),
        (at_risk(recovered=True), ("nina",)),
        (fund(), ("ann",)),  # a campaign's fund → the campaign owner
        (fund(campaign_id=None), ("carl",)),  # a line's fund → the plan owner
        (MOVED_TO_LINE, ("carl",)),  # an unknown line does not hold a cause back
        (over_limit(), ("ann",)),
        (status("rejected", "Too broad"), ("ann",)),
        (REQUESTED, ("carl",)),  # the plan owner approves
        (decided(), ("mia",)),  # the requester, remembered from the request
        (decided("r-unknown"), ("ann",)),  # requester unknown → the campaign owner
        (proposed(), ("nina",)),  # the parent unit's owner
        (PROPOSAL_DECIDED, ("rick",)),
    ],
)
def test_new_causes_go_to_the_responsible_owner(data: EventData, expected: tuple) -> None:
    assert domain.is_cause(data.event_type)
    assert domain.audience_of(cause(data), directory=DIRECTORY) == domain.Audience(
        recipients=expected
    )


@pytest.mark.parametrize(
    ("data", "key"),
    [
        (at_risk("south"), domain.WaitKey(kind="unit", identifier="south")),
        (proposed("rep9"), domain.WaitKey(kind="unit", identifier="rep9")),
        (fund(), domain.WaitKey(kind="campaign", identifier="c1")),
        (fund(campaign_id=None), domain.WaitKey(kind="plan", identifier="p1")),
        (REQUESTED, domain.WaitKey(kind="plan", identifier="p1")),
        (status("rejected"), domain.WaitKey(kind="campaign", identifier="c1")),
    ],
)
def test_a_cause_whose_owner_is_unknown_waits_for_it(data: EventData, key: domain.WaitKey) -> None:
    assert domain.audience_of(cause(data), directory=domain.Directory()).waits_for == key


def test_a_proposal_waits_for_the_parent_unit_and_the_top_unit_notifies_nobody() -> None:
    orphan = domain.Directory(units={"rep1": DIRECTORY.units["rep1"]})
    assert domain.audience_of(cause(proposed()), directory=orphan).waits_for == domain.WaitKey(
        kind="unit", identifier="north"
    )
    assert domain.audience_of(cause(proposed("co")), directory=DIRECTORY) == domain.Audience()


@pytest.mark.parametrize("new", ["approved", "submitted", "active", "cancelled"])
def test_only_a_rejection_among_status_changes_notifies(new: str) -> None:
    audience = domain.audience_of(cause(status(new)), directory=domain.Directory())
    assert audience == domain.Audience()


def test_planning_events_without_a_rule_are_not_causes() -> None:
    for event_type in (
        SalesUnitSet.event_type,
        SalesTargetSet.event_type,
        DiscountLimitSet.event_type,
        "campaign.planned",
        "kpi.snapshot",
    ):
        assert not domain.is_cause(event_type)


def test_lookups_name_the_unit_campaign_plan_and_request() -> None:
    assert domain.lookups_for(at_risk()) == domain.Lookups(unit_ids=frozenset({"north"}))
    assert domain.lookups_for(fund(campaign_id=None)) == domain.Lookups(
        plan_ids=frozenset({"p1"}), line_ids=frozenset({"l7"})
    )
    assert domain.lookups_for(decided()) == domain.Lookups(
        campaign_ids=frozenset({"c1"}), request_ids=frozenset({"r1"})
    )
    related = domain.lookups_with_plans(
        domain.lookups_for(proposed()), domain.Directory(units={"rep1": DIRECTORY.units["rep1"]})
    )
    assert related.unit_ids == {"rep1", "north"}


def test_lookups_load_the_budget_lines_a_message_names() -> None:
    assert domain.lookups_for(over_limit("l7")) == domain.Lookups(
        campaign_ids=frozenset({"c1"}), line_ids=frozenset({"l7"})
    )
    assert domain.lookups_for(over_limit()).line_ids == frozenset()
    moved = domain.lookups_for(MOVED_TO_LINE)
    assert moved == domain.Lookups(
        plan_ids=frozenset({"p1"}), campaign_ids=frozenset({"c1"}), line_ids=frozenset({"l7"})
    )
    assert domain.lookups_with_plans(moved, DIRECTORY).line_ids == {"l7"}


# --- messages ---------------------------------------------------------------------------------


def text(data: EventData, directory: domain.Directory = DIRECTORY) -> domain.Message:
    return domain.compose(cause(data), directory=directory, greeting="Nina")


def test_at_risk_names_unit_period_amounts_and_threshold() -> None:
    message = text(at_risk())
    assert message.subject == 'Sales target at risk: region "North", 2027-Q1'
    assert 'the sales target of region "North" for 2027-Q1 (all brands) will be missed' in (
        message.body
    )
    assert "Forecast to the period's end: 72,000.00 EUR, 72.0 % of the 100,000.00 EUR target" in (
        message.body
    )
    assert "(alert threshold 90.0 %)" in message.body
    assert "Sales so far: 36,000.00 EUR as of 2027-02-14 09:00 UTC" in message.body
    assert "from 2027-01-01 to 2027-03-31" in message.body
    recovered = text(at_risk(recovered=True))
    assert recovered.subject == 'Sales target back on track: region "North", 2027-Q1'
    assert "is back on track" in recovered.body


def test_promo_fund_message_names_scope_used_and_remaining() -> None:
    message = text(fund())
    assert message.subject == (
        'Promo fund alert: the campaign "Spring Sale" (plan "Plan 2027") has used 80 % of its '
        "promo fund"
    )
    assert "total 4,000.00 EUR of its 5,000.00 EUR promo fund (80.0 %)" in message.body
    assert "Remaining: 1,000.00 EUR." in message.body
    line = text(fund(campaign_id=None))
    assert 'the budget line l7 of "Plan 2027"' in line.subject


def test_limit_exceeded_message_names_order_rates_and_amount_over() -> None:
    message = text(over_limit())
    assert message.subject == (
        'Discount over limit: order o-42 of "Spring Sale" got 30.0 % (maximum 20.0 %)'
    )
    assert "a discount of 300.00 EUR (30.0 %)" in message.body
    assert 'set on the plan "Plan 2027"' in message.body
    assert "Discount beyond the maximum: 100.00 EUR." in message.body


def test_a_known_budget_line_is_named_in_fund_limit_and_rule_messages() -> None:
    line = 'the budget line "Acme Pro at PartnerNet"'
    alert = text(fund(campaign_id=None), WITH_LINE)
    assert alert.subject == (
        f'Promo fund alert: {line} of "Plan 2027" has used 80 % of its promo fund'
    )
    assert f'Discounts given under {line} of "Plan 2027" total 4,000.00 EUR' in alert.body
    assert f'set on {line} of "Plan 2027".' in text(over_limit("l7"), WITH_LINE).body
    moved = text(MOVED_TO_LINE, WITH_LINE)
    assert moved.subject == (
        f'Budget moved by a reallocation rule in "Plan 2027": 304.31 EUR from "Spring Sale" '
        f"to {line}"
    )
    assert f'"Spring Sale" (now 9,695.69 EUR) to {line} in "Plan 2027".' in moved.body


def test_an_unknown_budget_line_is_named_by_its_id() -> None:
    assert text(fund(campaign_id=None)).subject.startswith(
        'Promo fund alert: the budget line l7 of "Plan 2027" has used'
    )
    assert 'set on the budget line l7 of "Plan 2027".' in text(over_limit("l7")).body
    assert text(MOVED_TO_LINE).subject.endswith('from "Spring Sale" to budget line l7')


def test_approval_messages_carry_who_and_why() -> None:
    rejected = text(status("rejected", "Too broad"))
    assert rejected.subject == 'Campaign rejected: "Spring Sale"'
    assert "was rejected by cmo." in rejected.body
    assert "Reason: Too broad" in rejected.body
    requested = text(REQUESTED)
    assert requested.subject == 'Change request for "Spring Sale" awaits your decision'
    assert "- budget: 12000.00\n- end date: 2027-06-30" in requested.body
    decision = text(decided())
    assert decision.subject == 'Change request rejected: "Spring Sale"'
    assert "rejected by carl; the approved values stand" in decision.body
    assert "Reason: No budget left" in decision.body
    assert "superseded by a newer request" in text(decided(decision="superseded")).body


def test_proposal_messages_name_unit_amount_and_comment() -> None:
    message = text(proposed())
    assert message.subject == 'Sales target proposal from rep "Rick Rep": 80,000'
    assert "rick proposes 80,000 as the figure of target t2" in message.body
    assert "Comment: Two key accounts left" in message.body
    outcome = text(PROPOSAL_DECIDED)
    assert outcome.subject == 'Sales target proposal rejected: rep "Rick Rep"'
    assert "Reason: The region's total is fixed" in outcome.body


def test_a_rule_move_planning_refused_tells_the_plan_owner_why() -> None:
    failed = ReallocationApplyFailed(
        proposal_id="pr-9",
        plan_id="p1",
        rule_id="r-cpl",
        from_campaign_id="c1",
        to_line_id="l7",
        amount=Decimal("900.00"),
        currency="EUR",
        reason="CPL 100 (> 60)",
        note="900.00 exceeds the unspent budget of campaign 'Spring Sale': 700.00 available",
    )
    assert domain.is_cause(failed.event_type)
    assert domain.audience_of(cause(failed), directory=DIRECTORY).recipients == ("carl",)
    assert domain.lookups_for(failed).line_ids == frozenset({"l7"})
    message = text(failed, WITH_LINE)
    assert message.subject == (
        'A reallocation rule could not move 900.00 EUR from "Spring Sale" in "Plan 2027"'
    )
    assert "700.00 available" in message.body
    assert 'to the budget line "Acme Pro at PartnerNet" in "Plan 2027"' in message.body
    assert "the proposal is pr-9" in message.body
