"""Promotion uplift by before / during / after against figures computed by hand (``uplift``)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from fractions import Fraction as F

import pytest

from services.measurement import uplift, uplift_models
from services.measurement.uplift import WeekSales

START, END = dt.date(2027, 3, 1), dt.date(2027, 3, 14)  # two weeks, end inclusive
LATER = dt.datetime(2027, 6, 1, tzinfo=dt.UTC)  # every window over


def week(window: uplift.Window, n: int, units: int, revenue: str, discounts: str = "0"):  # type: ignore[no-untyped-def]
    """One week's sales."""
    return WeekSales(window, n, units, D(revenue), D(discounts))


# baseline: 4 units, 400.00 in 4 weeks = 1 unit, 100.00 a week
BEFORE = [
    week("before", 0, 1, "100"),
    week("before", 1, 1, "100"),
    week("before", 2, 1, "108"),
    week("before", 3, 1, "92", "8"),
]
DURING = [week("during", 0, 3, "650", "50"), week("during", 1, 2, "154", "5.40")]
AFTER = [week("after", 0, 1, "50")]


def measure(sales: list[WeekSales], **kw) -> uplift.Uplift:  # type: ignore[no-untyped-def]
    """The uplift of the two-week campaign at margin 0.5 and cost 400.00."""
    args = {"as_of": LATER, "weeks_before": 4, "weeks_after": 2, "cost": D("400"), **kw}
    return uplift.uplift(start_date=START, end_date=END, gross_margin=D("0.5"), sales=sales, **args)


def test_windows_cut_at_midnight_utc_with_the_end_date_inclusive() -> None:
    bounds = uplift.windows(start_date=START, end_date=END, weeks_before=4, weeks_after=2)
    utc = dt.UTC
    assert {w: (b.start, b.end) for w, b in bounds.items()} == {
        "before": (dt.datetime(2027, 2, 1, tzinfo=utc), dt.datetime(2027, 3, 1, tzinfo=utc)),
        "during": (dt.datetime(2027, 3, 1, tzinfo=utc), dt.datetime(2027, 3, 15, tzinfo=utc)),
        "after": (dt.datetime(2027, 3, 15, tzinfo=utc), dt.datetime(2027, 3, 29, tzinfo=utc)),
    }


def test_incremental_roi_and_dip_against_the_baseline() -> None:
    result = measure([*BEFORE, *DURING, *AFTER])
    assert (result.before.units, result.before.revenue, result.before.weeks) == (4, 400, 4)
    assert (result.units_per_week, result.revenue_per_week) == (1, 100)
    # during: 5 units, 804.00 against 2 × baseline = 2 units, 200.00
    assert (result.during.units, result.during.revenue, result.during.weeks) == (5, 804, 2)
    assert result.expected(result.during) == (2, 200)
    assert result.incremental == uplift.Change(units=F(3), revenue=F(604), gross_profit=F(302))
    assert (result.discounts, result.cost) == (F("55.40"), 400)
    # (302 − 400 − 55.40) / (400 + 55.40)
    assert result.promotion_roi == F("-153.40") / F("455.40")
    assert uplift.rounded(result.promotion_roi, 6) == D("-0.336847")
    # after: 1 unit, 50.00 against 2 units, 200.00: a dip
    assert result.dip == uplift.Change(units=F(-1), revenue=F(-150), gross_profit=F(-75))


def test_a_campaign_longer_than_whole_weeks_expects_its_fraction_of_a_week() -> None:
    # 10 days = 10/7 weeks: expected 10/7 units, 1000/7 revenue
    result = uplift.uplift(
        start_date=START,
        end_date=dt.date(2027, 3, 10),
        gross_margin=D("0.5"),
        cost=D("0"),
        sales=[*BEFORE, week("during", 0, 2, "300")],
        as_of=LATER,
        weeks_before=4,
        weeks_after=2,
    )
    assert result.during.weeks == F(10, 7)
    assert result.incremental.units == 2 - F(10, 7)
    assert uplift.rounded(result.incremental.units, 2) == D("0.57")
    assert uplift.rounded(result.incremental.revenue, 2) == D("157.14")  # 300 − 142.857…
    assert uplift.rounded(result.incremental.gross_profit, 2) == D("78.57")
    assert result.promotion_roi is None  # nothing spent, no discounts: undefined


def test_only_the_elapsed_part_of_a_window_counts() -> None:
    # one week into the campaign: expected one week's baseline; the after window not begun
    as_of = dt.datetime(2027, 3, 8, tzinfo=dt.UTC)
    result = measure([*BEFORE, DURING[0]], as_of=as_of)
    assert (result.during.weeks, result.after.weeks) == (1, 0)
    assert result.incremental == uplift.Change(units=F(2), revenue=F(550), gross_profit=F(275))
    assert result.dip == uplift.Change(units=F(0), revenue=F(0), gross_profit=F(0))
    assert result.promotion_roi == F(275 - 400 - 50, 450)


def test_without_a_baseline_week_nothing_incremental_is_known() -> None:
    as_of = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)  # before the baseline weeks began
    result = measure([], as_of=as_of)
    assert (result.units_per_week, result.revenue_per_week) == (None, None)
    assert result.incremental == uplift.Change(None, None, None)
    assert result.promotion_roi is None


def test_an_amount_without_fx_rate_makes_what_depends_on_it_unknown() -> None:
    unrated = WeekSales("during", 1, 1, None, None)
    result = measure([*BEFORE, DURING[0], unrated])
    assert result.during.units == 4  # counts need no rate
    assert (result.during.revenue, result.discounts) == (None, None)
    assert result.incremental.units == 2
    assert (result.incremental.revenue, result.incremental.gross_profit) == (None, None)
    assert result.promotion_roi is None
    assert measure([*BEFORE, *DURING], cost=None).promotion_roi is None


@pytest.mark.parametrize(
    ("value", "places", "expected"),
    [
        (F(1, 200), 2, D("0.01")),
        (F(-1, 200), 2, D("-0.01")),
        (F(-1, 3), 6, D("-0.333333")),
        (F(0), 2, D("0.00")),
        (None, 2, None),
    ],
)
def test_rounding_is_half_up_away_from_zero(value: F | None, places: int, expected: D) -> None:
    assert uplift.rounded(value, places) == expected
    if expected is not None:
        assert str(uplift.rounded(value, places)) == str(expected)


def test_net_adds_the_dip_to_the_incremental_and_its_roi_counts_it() -> None:
    result = measure([*BEFORE, *DURING, *AFTER])
    assert result.used == "before" and result.control is None
    # incremental 3, 604.00, 302.00 + dip −1, −150.00, −75.00
    assert result.estimate.net == uplift.Change(units=F(2), revenue=F(454), gross_profit=F(227))
    # (227 − 400 − 55.40) / 455.40
    assert result.estimate.net_promotion_roi == F("-228.40") / F("455.40")
    assert uplift.rounded(result.estimate.net_promotion_roi, 6) == D("-0.501537")


def test_a_rise_after_the_campaign_adds_to_the_net() -> None:
    # after: 6 units, 700.00 against 2 units, 200.00 → +4, +500.00, +250.00
    result = measure([*BEFORE, *DURING, week("after", 0, 3, "300"), week("after", 1, 3, "400")])
    assert result.dip == uplift.Change(units=F(4), revenue=F(500), gross_profit=F(250))
    assert result.estimate.net == uplift.Change(units=F(7), revenue=F(1104), gross_profit=F(552))
    assert result.estimate.net_promotion_roi == F("96.60") / F("455.40")


# the control partners: 8 units, 800.00 before (2, 200.00 a week); 5, 500.00 during
# (2.5, 250.00 a week: × 1.25); 3, 240.00 after (1.5, 120.00 a week: × 0.75 and × 0.6)
CONTROL = [
    week("before", 0, 2, "200"),
    week("before", 1, 2, "200"),
    week("before", 2, 2, "200"),
    week("before", 3, 2, "200"),
    week("during", 0, 3, "300"),
    week("during", 1, 2, "200"),
    week("after", 0, 1, "40"),
    week("after", 1, 2, "200"),
]


def test_a_control_group_scales_the_baseline_by_its_own_change() -> None:
    result = measure([*BEFORE, *DURING, *AFTER], control_sales=CONTROL)
    control = result.control
    assert control is not None and control.reason is None
    assert (control.before.units, control.during.units, control.after.units) == (8, 5, 3)
    assert control.during_change == uplift.Expected(F(5, 4), F(5, 4))
    assert control.after_change == uplift.Expected(F(3, 4), F(3, 5))
    assert result.used == "control"
    # expected during: 4 units × 5/8 = 2.5, 400.00 × 500/800 = 250.00
    # expected after: 4 × 3/8 = 1.5, 400.00 × 240/800 = 120.00
    estimate = result.estimate
    assert (estimate.during, estimate.after) == (
        uplift.Expected(F(5, 2), F(250)),
        uplift.Expected(F(3, 2), F(120)),
    )
    # incremental: 5 − 2.5, 804 − 250, 554 × 0.5; dip: 1 − 1.5, 50 − 120, −70 × 0.5
    assert result.incremental == uplift.Change(F(5, 2), F(554), F(277))
    assert result.dip == uplift.Change(F(-1, 2), F(-70), F(-35))
    assert estimate.net == uplift.Change(F(2), F(484), F(242))
    assert result.promotion_roi == F("-178.40") / F("455.40")  # (277 − 455.40) / 455.40
    assert estimate.net_promotion_roi == F("-213.40") / F("455.40")
    # the before-baseline stays reported beside it
    assert result.baseline.incremental == uplift.Change(F(3), F(604), F(302))


def test_a_control_without_sales_before_cannot_serve() -> None:
    late = [week("during", 0, 3, "300")]
    result = measure([*BEFORE, *DURING], control_sales=late)
    assert result.control is not None and result.control.estimate is None
    assert result.control.reason == (
        "the control partners sold none of the promoted products in the weeks before"
    )
    assert result.control.during_change == uplift.Expected(None, None)
    assert result.used == "before"
    assert result.incremental == uplift.Change(F(3), F(604), F(302))


def test_no_control_partners_says_so() -> None:
    result = measure([*BEFORE, *DURING], control_sales=[])
    assert result.control is not None and result.used == "before"
    assert result.control.reason == "no partner outside the promotion sold the promoted products"


def test_a_control_amount_without_fx_rate_leaves_the_revenue_baseline_unknown() -> None:
    unrated = [*CONTROL[:3], WeekSales("before", 3, 2, None, None), *CONTROL[4:]]
    result = measure([*BEFORE, *DURING], control_sales=unrated)
    assert result.used == "control"
    assert result.estimate.during == uplift.Expected(F(5, 2), None)
    assert result.incremental == uplift.Change(F(5, 2), None, None)
    assert result.promotion_roi is None


def test_the_openapi_example_is_a_valid_answer() -> None:
    model = uplift_models.PromotionUplift
    example = model.model_config["json_schema_extra"]["examples"][0]  # type: ignore[index]
    answer = model.model_validate(example)
    # the example is the two-week campaign above with the control group CONTROL
    assert answer.baselines.before.incremental.gross_profit == D("302.00")
    assert answer.baselines.before.promotion_roi == D("-0.336847")
    assert answer.baselines.before.net_promotion_roi == D("-0.501537")
    assert answer.incremental.gross_profit == D("277.00")
    assert (answer.promotion_roi, answer.net_promotion_roi) == (D("-0.391744"), D("-0.468599"))
