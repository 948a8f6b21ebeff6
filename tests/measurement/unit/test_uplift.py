"""Promotion uplift by before / during / after against figures computed by hand (``uplift``)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from fractions import Fraction as F

import pytest

from services.measurement import schemas, uplift
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


def test_the_openapi_example_is_a_valid_answer() -> None:
    example = schemas.PromotionUplift.model_config["json_schema_extra"]["examples"][0]  # type: ignore[index]
    answer = schemas.PromotionUplift.model_validate(example)
    # the example is the two-week campaign above
    assert answer.incremental.gross_profit == D("302.00")
    assert answer.promotion_roi == D("-0.336847")
