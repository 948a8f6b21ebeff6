"""A plan's reallocation rules against hand-made campaign figures: who gives, who receives,
how much, once per episode of the condition, after ``hold_s``, in the donor's line."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

from services.measurement.reallocation import (
    CampaignStanding,
    PlanRule,
    evaluate,
    fired_key,
    hold_key,
)
from shared.reallocation import RuleSpec, default_rule

DEFAULT = PlanRule(spec=default_rule())  # CKPI < 80 gives 20 % to the best ≥ 110 of its line


def standing(campaign_id: str, ckpi: str | None, *, spend: str = "2000", **kw: object):
    """A live campaign of budget 10,000 EUR (20 % spent by default) with the given CKPI."""
    fields = {"status": "active", "budget": D("10000"), "currency": "EUR", **kw}
    kpis = {"ckpi": None if ckpi is None else D(ckpi), **fields.pop("kpis", {})}  # type: ignore[dict-item]
    return CampaignStanding(
        campaign_id=campaign_id,
        kpis=kpis,
        spend=D(spend),
        **fields,  # type: ignore[arg-type]
    )


class Plan:
    """The monitor's stored state for one plan, carried from round to round."""

    def __init__(self, *rules: PlanRule) -> None:
        self.rules = rules or (DEFAULT,)
        self.fired: set[str] = set()
        self.holding: dict[str, int] = {}

    def round(self, campaigns: list[CampaignStanding], *, now_s: int = 0):  # type: ignore[no-untyped-def]
        outcome = evaluate(
            plan_id="p1",
            campaigns=campaigns,
            rules=self.rules,
            fired=self.fired,
            holding=self.holding,
            now_us=now_s * 1_000_000,
        )
        for key, on in outcome.changes.items():
            if key.startswith("fired:"):
                (self.fired.add if on else self.fired.discard)(key)
            elif on:
                self.holding[key] = now_s * 1_000_000
            else:
                self.holding.pop(key, None)
        return [proposal for proposal, _ in outcome.proposals]


def moves(proposals) -> list[tuple[str, str | None, D]]:  # type: ignore[no-untyped-def]
    return [(p.from_campaign_id, p.to_campaign_id or p.to_line_id, p.amount) for p in proposals]


def test_the_default_rule_gives_to_the_best_campaign_of_the_line() -> None:
    campaigns = [
        standing("good", "120"),
        standing("best", "140", name="Search"),
        standing("poor", "70", spend="3000"),
        standing("worst", "40", spend="2500", name="Social launch"),
        standing("fine", "100"),
    ]
    proposals = Plan().round(campaigns)
    assert moves(proposals) == [
        ("poor", "best", D("1400.00")),  # 20 % of 10,000 − 3,000
        ("worst", "best", D("1500.00")),  # 20 % of 10,000 − 2,500
    ]
    assert {(p.plan_id, p.rule_id, p.mode) for p in proposals} == {("p1", None, "propose")}
    assert proposals[1].reason == (
        'campaign "Social launch" has CKPI 40 (< 80): move 20 % of the 7,500.00 EUR not yet'
        ' spent to campaign "Search" (CKPI 140, the best of its line)'
    )


def test_a_rule_fires_once_per_episode_and_again_after_the_hysteresis() -> None:
    plan = Plan()
    over = standing("over", "120")
    assert moves(plan.round([standing("under", "70"), over])) == [("under", "over", D("1600.00"))]
    assert plan.fired == {fired_key(DEFAULT, "under")}
    assert plan.round([standing("under", "60"), over]) == []  # the same episode
    # back above the threshold but inside the band (80 ≤ 82 < 85): the episode goes on
    assert plan.round([standing("under", "82"), over]) == []
    assert plan.fired == {fired_key(DEFAULT, "under")}
    assert plan.round([standing("under", "85"), over]) == []  # past the band: over
    assert plan.fired == set()
    assert moves(plan.round([standing("under", "60"), over])) == [("under", "over", D("1600.00"))]


def test_an_episode_ends_when_the_donor_is_no_longer_live() -> None:
    plan = Plan()
    plan.round([standing("under", "70"), standing("over", "120")])
    plan.round([standing("under", "70", status="completed"), standing("over", "120")])
    assert plan.fired == set()


def test_campaigns_without_evidence_life_budget_or_recipient_give_nothing() -> None:
    over = standing("over", "130")
    for under in (
        standing("u", "50", spend="999"),  # under 10 % of its budget spent
        standing("u", None),  # no KPI targets (no CKPI)
        standing("u", "50", status="completed"),
        standing("u", "50", status="draft"),
        standing("u", "50", spend="10000"),  # nothing left to give
        standing("u", "50", currency="USD"),  # no recipient in its currency
        standing("u", "50", line_id="other"),  # no recipient in its line
    ):
        plan = Plan()
        assert (plan.round([under, over]), plan.fired) == ([], set()), under
    # nobody scores the recipient threshold (110)
    assert Plan().round([standing("u", "50"), standing("o", "109.99")]) == []
    # the recipient must have evidence too
    assert Plan().round([standing("u", "50"), standing("o", "130", spend="10")]) == []


def test_a_donor_waits_for_a_recipient_then_fires() -> None:
    plan = Plan()
    assert plan.round([standing("u", "50"), standing("o", "100")]) == []
    assert plan.fired == set()
    assert moves(plan.round([standing("u", "50"), standing("o", "111")])) == [
        ("u", "o", D("1600.00"))
    ]


def test_best_in_line_looks_in_the_donor_line_only() -> None:
    campaigns = [
        standing("a-under", "50", line_id="brand-a"),
        standing("a-over", "115", line_id="brand-a"),
        standing("b-best", "150", line_id="brand-b"),
        standing("plan-level", "60"),
    ]
    assert moves(Plan().round(campaigns)) == [("a-under", "a-over", D("1600.00"))]


def test_a_condition_on_a_cost_kpi_picks_the_cheapest_recipient() -> None:
    rule = PlanRule(
        rule_id="r-cpl",
        spec=RuleSpec(
            kpi="cpl",
            comparison="gt",
            threshold=D(50),
            action="best_in_line",
            share=D("0.5"),
            recipient_threshold=D(30),
            mode="apply",
        ),
    )

    def cpl(campaign_id: str, value: str, **kw: object) -> CampaignStanding:
        return standing(campaign_id, None, kpis={"cpl": D(value)}, **kw)

    campaigns = [cpl("dear", "80"), cpl("cheap", "25"), cpl("cheaper", "20"), cpl("mid", "35")]
    [proposal] = Plan(rule).round(campaigns)
    assert moves([proposal]) == [("dear", "cheaper", D("4000.00"))]
    assert (proposal.rule_id, proposal.mode) == ("r-cpl", "apply")
    assert proposal.reason.startswith("campaign dear has CPL 80 (> 50): move 50 %")
    # no campaign at or under 30: nothing moves
    assert Plan(rule).round([cpl("dear", "80"), cpl("mid", "35")]) == []


def test_a_condition_must_hold_for_hold_s_before_the_rule_fires() -> None:
    rule = PlanRule(rule_id="r-hold", spec=replace(default_rule(), hold_s=600))
    plan = Plan(rule)
    campaigns = [standing("u", "50"), standing("o", "120")]
    assert plan.round(campaigns, now_s=1000) == []
    assert plan.holding == {hold_key(rule, "u"): 1000 * 1_000_000}
    assert plan.round(campaigns, now_s=1599) == []
    assert moves(plan.round(campaigns, now_s=1600)) == [("u", "o", D("1600.00"))]
    assert (plan.holding, plan.fired) == ({}, {fired_key(rule, "u")})
    # a condition that stops holding before its time starts again from zero
    plan = Plan(rule)
    plan.round(campaigns, now_s=0)
    plan.round([standing("u", "81"), standing("o", "120")], now_s=300)
    assert plan.holding == {}
    assert plan.round(campaigns, now_s=700) == []
    assert plan.holding == {hold_key(rule, "u"): 700 * 1_000_000}


def test_named_recipients_a_campaign_or_a_line() -> None:
    to_campaign = PlanRule(
        rule_id="r-c",
        spec=RuleSpec(
            kpi="romi",
            comparison="lt",
            threshold=D(0),
            action="campaign",
            target_id="reserve",
            share=D("0.25"),
        ),
    )
    to_line = PlanRule(
        rule_id="r-l",
        spec=replace(to_campaign.spec, action="line", target_id="line-b", mode="apply"),
    )
    losing = standing("losing", None, kpis={"romi": D("-0.4")})
    reserve = standing("reserve", None, status="draft")  # a named campaign need not be live
    assert moves(Plan(to_campaign).round([losing, reserve])) == [
        ("losing", "reserve", D("2000.00"))
    ]
    assert Plan(to_campaign).round([losing]) == []  # the named campaign is unknown
    [proposal] = Plan(to_line).round([losing])
    assert (proposal.to_campaign_id, proposal.to_line_id, proposal.amount) == (
        None,
        "line-b",
        D("2000.00"),
    )
    assert proposal.reason.endswith("to budget line line-b")
    named = evaluate(
        plan_id="p1",
        campaigns=[losing],
        rules=[to_line],
        fired=(),
        holding={},
        now_us=0,
        line_names={"line-b": "Brand B"},
    )
    assert named.proposals[0][0].reason.endswith('to the budget line "Brand B"')


def test_each_rule_fires_for_itself_and_a_disabled_rule_never() -> None:
    second = PlanRule(rule_id="r-2", spec=replace(default_rule(), share=D("0.1")))
    disabled = PlanRule(rule_id="r-3", spec=replace(default_rule(), enabled=False))
    plan = Plan(DEFAULT, second, disabled)
    proposals = plan.round([standing("u", "50"), standing("o", "120")])
    assert [(p.rule_id, p.amount) for p in proposals] == [
        (None, D("1600.00")),
        ("r-2", D("800.00")),
    ]


def test_small_moves_wait_for_the_minimum_amount() -> None:
    rule = PlanRule(rule_id="r", spec=replace(default_rule(), min_amount=D("1600.01")))
    plan = Plan(rule)
    assert plan.round([standing("u", "50"), standing("o", "120")]) == []
    assert plan.fired == set()


def test_a_rule_scoped_to_a_line_watches_its_campaigns_and_those_beneath() -> None:
    scoped = PlanRule(rule_id="r-s", spec=replace(default_rule(), scope_line_id="brand"))
    campaigns = [
        standing("in-brand", "50", line_id="brand"),
        standing("brand-best", "120", line_id="brand"),
        standing("in-partner", "40", line_id="partner"),
        standing("partner-best", "130", line_id="partner"),
        standing("elsewhere", "10", line_id="other"),
        standing("other-best", "140", line_id="other"),
    ]
    outcome = evaluate(
        plan_id="p1",
        campaigns=campaigns,
        rules=[scoped],
        fired=(),
        holding={},
        now_us=0,
        parents={"partner": "brand", "brand": None, "other": None},
    )
    assert moves([p for p, _ in outcome.proposals]) == [
        ("in-brand", "brand-best", D("1600.00")),
        ("in-partner", "partner-best", D("1600.00")),
    ]
