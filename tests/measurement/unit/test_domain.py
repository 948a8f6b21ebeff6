"""Unit tests of the pure KPI domain: ratios, formulas, CKPI, target evaluation, hysteresis."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest

from services.measurement import domain
from services.measurement.domain import Measures, Target
from shared.events.kpi import KpiTargetBreached, KpiTargetRecovered
from shared.kpis import direction_of

NOW = dt.datetime(2027, 3, 16, 12, tzinfo=dt.UTC)


def test_ratio_rounds_half_up_and_never_divides_by_zero() -> None:
    assert domain.ratio(1, 3) == D("0.333333")
    assert domain.ratio(2, 3) == D("0.666667")
    assert domain.ratio(D("0.0000005"), 1) == D("0.000001")
    assert domain.ratio(5, 0) is None
    assert domain.ratio(None, 2) is None
    assert domain.ratio(2, None) is None
    assert domain.ratio(D("10"), D("4"), places=2) == D("2.50")


def test_stage_rank_follows_the_funnel_and_lost_ranks_nowhere() -> None:
    assert [domain.stage_rank(s) for s in domain.FUNNEL_STAGES] == list(range(7))
    assert domain.stage_rank("lost") == -1


def test_directions() -> None:
    for kpi in ("cpl", "cac", "cpc", "marketing_pct_of_sales"):
        assert direction_of(kpi) == "lower_is_better"
    for kpi in ("romi", "roi", "ctr", "ltv", "leads"):
        assert direction_of(kpi) == "higher_is_better"


def test_conversions_use_leads_reaching_a_stage_or_later() -> None:
    # reached: visitor 10, lead 8, mql 4, sql 2, sal 1, opportunity 0, customer 0
    conversions = domain.funnel_conversions((10, 8, 4, 2, 1, 0, 0))
    assert conversions["visitor_to_lead"] == D("0.800000")  # 8 / 10
    assert conversions["lead_to_mql"] == D("0.500000")  # 4 / 8
    assert conversions["sql_to_sal"] == D("0.500000")  # 1 / 2
    assert conversions["sal_to_opportunity"] == D("0.000000")  # 0 / 1
    assert conversions["opportunity_to_customer"] is None  # 0 / 0
    assert conversions["lead_to_customer"] == D("0.000000")  # 0 / 8


def test_compute_kpis_formulas() -> None:
    m = Measures(
        spend=D("1000.00"),
        impressions=50_000,
        clicks=400,
        reached=(30, 20, 10, 5, 4, 3, 2),
        lost=3,
        revenue=D("6000.00"),
        gross_profit=D("2400.00"),
        discounts=D("200.00"),
        orders=8,
        buyers=6,
        repeat_buyers=2,
        new_customers=4,
        ltv_customers=5,
        ltv_gross_profit=D("3000.00"),
        budget=D("4000.00"),
        start_date=dt.date(2027, 3, 1),
        end_date=dt.date(2027, 3, 31),
    )
    k = domain.compute_kpis(m, as_of=NOW)
    assert k["spend"] == D("1000.00")
    assert k["ctr"] == D("0.008000")  # 400 / 50000
    assert k["cpc"] == D("2.50")  # 1000 / 400
    assert k["leads"] == 20
    assert k["cpl"] == D("50.00")  # 1000 / 20
    assert k["cac"] == D("250.00")  # 1000 / 4
    assert k["romi"] == D("1.400000")  # (2400 - 1000) / 1000
    assert k["roi"] == D("1.000000")  # (2400 - 1000 - 200) / (1000 + 200)
    assert k["average_check"] == D("750.00")  # 6000 / 8
    assert k["repeat_purchase_rate"] == D("0.333333")  # 2 / 6
    assert k["ltv"] == D("600.00")  # 3000 / 5
    assert k["ltv_cac"] == D("2.400000")  # 600 / 250
    assert k["marketing_pct_of_sales"] == D("0.166667")  # 1000 / 6000
    assert k["budget_utilisation"] == D("0.250000")  # 1000 / 4000
    # 15.5 of 31 days elapsed at NOW -> share 0.5 -> 1000 / 0.5
    assert k["forecast_at_completion"] == D("2000.00")
    assert k["funnel"]["sal"] == 4
    assert k["lost"] == 3


def test_compute_kpis_on_empty_scope_gives_none_not_errors() -> None:
    k = domain.compute_kpis(Measures(), as_of=NOW)
    for name in ("ctr", "cpc", "cpl", "cac", "romi", "roi", "average_check", "ltv", "ltv_cac"):
        assert k[name] is None, name
    for name in ("repeat_purchase_rate", "marketing_pct_of_sales", "budget_utilisation"):
        assert k[name] is None, name
    assert k["budget"] is None
    assert k["forecast_at_completion"] is None
    assert k["spend"] == D("0.00")
    assert all(v is None for v in k["conversions"].values())


def test_ltv_cac_uses_unrounded_ltv_and_cac() -> None:
    # cac = 100 / 3 = 33.333..., ltv = 100 / 3 = 33.333... -> exactly 1, not 33.33/33.33 noise
    k = domain.compute_kpis(
        Measures(spend=D(100), new_customers=3, ltv_customers=3, ltv_gross_profit=D(100)),
        as_of=NOW,
    )
    assert k["cac"] == D("33.33")
    assert k["ltv_cac"] == D("1.000000")


def test_forecast_before_start_is_undefined_and_after_end_is_spend() -> None:
    start, end = dt.date(2027, 3, 1), dt.date(2027, 3, 31)
    before = dt.datetime(2027, 2, 1, tzinfo=dt.UTC)
    after = dt.datetime(2027, 6, 1, tzinfo=dt.UTC)
    forecast = domain.forecast_at_completion
    assert forecast(spend=D(300), start_date=start, end_date=end, as_of=before) is None
    assert forecast(spend=D(300), start_date=start, end_date=end, as_of=after) == D("300.00")


def _t(tid: str, kpi: str, target: str, weight: str = "1", tol: str = "0.05") -> Target:
    return Target(
        target_id=tid,
        campaign_id="c",
        kpi=kpi,
        target=D(target),
        direction=direction_of(kpi),
        weight=D(weight),
        tolerance=D(tol),
    )


def test_ckpi_weights_caps_and_skips_undefined() -> None:
    kpis = {
        "cpl": D("40.00"),
        "romi": D("3.0"),
        "ctr": None,
        "conversions": {"mql_to_sql": D("0.2")},
    }
    targets = [
        _t("1", "cpl", "50", weight="2"),  # lower: a = 50 / 40 = 1.25
        _t("2", "romi", "1.0"),  # higher: a = 3.0 / 1.0 = 3 -> capped 1.5
        _t("3", "ctr", "0.02", weight="5"),  # actual None -> skipped with its weight
        _t("4", "mql_to_sql", "0.4"),  # conversion: a = 0.2 / 0.4 = 0.5
    ]
    # (2 * 1.25 + 1 * 1.5 + 1 * 0.5) / (2 + 1 + 1) * 100 = 4.5 / 4 * 100 = 112.5
    assert domain.ckpi(kpis=kpis, targets=targets) == D("112.50")


def test_ckpi_without_defined_targets_is_none() -> None:
    assert domain.ckpi(kpis={"cpl": None}, targets=[_t("1", "cpl", "50")]) is None
    assert domain.ckpi(kpis={}, targets=[]) is None
    # a lower-is-better KPI at 0 makes target/actual undefined -> skipped
    assert domain.ckpi(kpis={"cpl": D(0)}, targets=[_t("1", "cpl", "50")]) is None


def test_plan_ckpi_judges_each_target_on_its_own_campaign() -> None:
    a = Target("ta", "A", "cpl", D("50"), "lower_is_better", D(1), D("0.05"))
    b = Target("tb", "B", "cpl", D("50"), "lower_is_better", D(1), D("0.05"))
    kpis = {"A": {"cpl": D("100")}, "B": {"cpl": D("25")}}
    # A: 50 / 100 = 0.5; B: 50 / 25 = 2 -> 1.5; (0.5 + 1.5) / 2 * 100 = 100
    assert domain.plan_ckpi(campaign_kpis=kpis, targets=[a, b]) == D("100.00")


@pytest.mark.parametrize(
    ("kpi", "target", "actual", "breached"),
    [
        ("romi", "1.0", "0.95", False),  # exactly at the 5 % band edge: not beyond it
        ("romi", "1.0", "0.9499", True),
        ("cpl", "50", "52.50", False),  # 50 * 1.05
        ("cpl", "50", "52.51", True),
        ("romi", "-1.0", "-1.06", True),  # negative target: the band is relative to |target|
        ("romi", "-1.0", "-1.04", False),
    ],
)
def test_breach_needs_more_than_tolerance(
    kpi: str, target: str, actual: str, breached: bool
) -> None:
    assert domain.is_breached(target=_t("1", kpi, target), actual=D(actual)) is breached


def _evaluate(targets: list[Target], kpis: dict, states: dict[str, bool]):  # type: ignore[no-untyped-def]
    return domain.evaluate_targets(
        campaign_id="c", plan_id="p", kpis=kpis, targets=targets, states=states, now=NOW
    )


def test_evaluate_emits_breach_once_then_nothing() -> None:
    target = _t("t1", "cpl", "50")
    events, states = _evaluate([target], {"cpl": D("60")}, {})
    assert states == {"t1": True}
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, KpiTargetBreached)
    assert (event.campaign_id, event.plan_id, event.target_id) == ("c", "p", "t1")
    assert (event.kpi, event.target, event.actual) == ("cpl", D("50"), D("60"))
    assert event.direction == "lower_is_better"
    again, states_again = _evaluate([target], {"cpl": D("60")}, states)
    assert again == []
    assert states_again == states


def test_hysteresis_no_flapping_inside_the_band() -> None:
    target = _t("t1", "romi", "1.0", tol="0.1")  # breach below 0.9, recover at >= 1.0
    states: dict[str, bool] = {}
    emitted: list[tuple[str, str]] = []
    for actual in ["0.95", "0.85", "0.95", "0.91", "0.99", "0.89", "1.00", "0.95", "0.91"]:
        events, states = _evaluate([target], {"romi": D(actual)}, states)
        emitted.extend((type(e).__name__, actual) for e in events)
    assert emitted == [("KpiTargetBreached", "0.85"), ("KpiTargetRecovered", "1.00")]
    assert states == {"t1": False}


def test_undefined_actual_keeps_the_state() -> None:
    target = _t("t1", "cac", "100")
    events, states = _evaluate([target], {"cac": None}, {"t1": True})
    assert events == []
    assert states == {"t1": True}
    events, states = _evaluate([target], {"cac": None}, {})
    assert (events, states) == ([], {"t1": False})


def test_recovery_event_and_other_campaigns_targets_ignored() -> None:
    mine = _t("t1", "ctr", "0.02")
    other = Target("t2", "other", "ctr", D("0.02"), "higher_is_better", D(1), D("0.05"))
    events, states = _evaluate([mine, other], {"ctr": D("0.025")}, {"t1": True})
    assert [type(e) for e in events] == [KpiTargetRecovered]
    assert events[0].actual == D("0.025")
    assert states == {"t1": False}


def test_evaluation_order_is_deterministic() -> None:
    targets = [_t("b", "cpl", "10"), _t("a", "cac", "10")]
    events, _ = _evaluate(targets, {"cpl": D(20), "cac": D(20)}, {})
    assert [e.target_id for e in events] == ["a", "b"]


# -- evidence before judging (the rules themselves: test_reallocation.py)


def test_evidence_is_a_share_of_the_budget_spent() -> None:
    share = D("0.1")
    assert not domain.has_evidence(spend=D("999.99"), budget=D("10000"), min_share=share)
    assert domain.has_evidence(spend=D("1000"), budget=D("10000"), min_share=share)
    assert not domain.has_evidence(spend=None, budget=D("10000"), min_share=share)
    # no budget: any spend is evidence; a zero share judges everything
    assert domain.has_evidence(spend=D("1"), budget=None, min_share=share)
    assert not domain.has_evidence(spend=D("0"), budget=D("0"), min_share=share)
    assert domain.has_evidence(spend=None, budget=D("10000"), min_share=D(0))
