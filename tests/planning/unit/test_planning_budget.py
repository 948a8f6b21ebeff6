"""Budget lines without I/O: phasing, the checks that keep every node within its parent, and
the roll-up of the budget view, against hand-computed figures."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from services.planning import budget
from shared import budget as tree
from shared.budget import Budget, Draw, LineFacts, Period
from shared.errors import DomainError

D = Decimal
YEAR = Period(start=dt.date(2027, 1, 1), end=dt.date(2027, 12, 31), cap=D("100000.00"))


def line(line_id: str, amount: str, parent: str | None = None, **extra: object) -> LineFacts:
    return LineFacts(
        line_id=line_id, plan_id="p", name=line_id, amount=D(amount), parent_id=parent, **extra
    )  # type: ignore[arg-type]


def draw(
    campaign_id: str, line_id: str | None, amount: str, status: str = "approved", **dates: dt.date
) -> Draw:
    return Draw(
        campaign_id=campaign_id,
        line_id=line_id,
        budget=D(amount),
        start_date=dates.get("start", dt.date(2027, 3, 1)),
        end_date=dates.get("end", dt.date(2027, 3, 31)),
        status=status,
    )


def test_even_phasing_puts_left_over_cents_in_the_first_months() -> None:
    parts = tree.phase_evenly(
        D("100.00"), tree.months_between(dt.date(2027, 1, 1), dt.date(2027, 3, 31))
    )
    assert parts == {"2027-01": D("33.34"), "2027-02": D("33.33"), "2027-03": D("33.33")}
    assert sum(parts.values()) == D("100.00")


def test_phasing_by_days_follows_the_calendar() -> None:
    # 10 days in January (22..31), 28 in February, 3 in March: 41 days for 4,100.00
    parts = tree.phase_by_days(D("4100.00"), dt.date(2027, 1, 22), dt.date(2027, 3, 3))
    assert parts == {"2027-01": D("1000.00"), "2027-02": D("2800.00"), "2027-03": D("300.00")}


def test_months_cross_years() -> None:
    assert tree.months_between(dt.date(2026, 11, 15), dt.date(2027, 2, 1)) == [
        "2026-11",
        "2026-12",
        "2027-01",
        "2027-02",
    ]


def test_a_line_over_its_parent_names_the_amount_still_available() -> None:
    plan = Budget(YEAR, [line("brand-a", "60000.00"), line("partner-x", "25000.00", "brand-a")], [])
    with pytest.raises(DomainError) as caught:
        budget.check_line(plan, line("partner-y", "35000.01", "brand-a"))
    assert caught.value.field == "amount" and caught.value.status_code == 422
    assert caught.value.context == {"available": "35000.00"}
    budget.check_line(plan, line("partner-y", "35000.00", "brand-a"))


def test_a_top_level_line_over_the_plan_cap_is_refused() -> None:
    plan = Budget(YEAR, [line("brand-a", "60000.00")], [draw("c-plain", None, "15000.00")])
    with pytest.raises(DomainError) as caught:
        budget.check_line(plan, line("brand-b", "25000.01"))
    assert caught.value.context == {"available": "25000.00"}
    budget.check_line(plan, line("brand-b", "25000.00"))
    # without a cap the plan takes any amount
    uncapped = Budget(
        Period(start=YEAR.start, end=YEAR.end), plan.lines.values(), plan.draws.values()
    )
    budget.check_line(uncapped, line("brand-b", "9999999.00"))


def test_a_line_cannot_shrink_below_what_is_beneath_it_nor_move_under_itself() -> None:
    plan = Budget(
        YEAR,
        [line("brand-a", "60000.00"), line("partner-x", "25000.00", "brand-a")],
        [draw("c1", "brand-a", "10000.00")],
    )
    with pytest.raises(DomainError) as caught:
        budget.check_line(plan, line("brand-a", "34999.99"))
    assert caught.value.field == "amount" and caught.value.context == {"taken": "35000.00"}
    budget.check_line(plan, line("brand-a", "35000.00"))
    with pytest.raises(DomainError) as caught:
        budget.check_line(plan, line("brand-a", "60000.00", "partner-x"))
    assert caught.value.field == "parent_id"
    with pytest.raises(DomainError) as caught:
        budget.check_line(plan, line("partner-z", "1.00", "no-such-line"))
    assert caught.value.field == "parent_id"


def test_a_campaign_over_its_line_names_the_amount_left_and_cancelled_ones_release_theirs() -> None:
    lines = [line("brand-a", "20000.00")]
    plan = Budget(
        YEAR,
        lines,
        [
            draw("c1", "brand-a", "12000.00"),
            draw("c-gone", "brand-a", "8000.00", status="cancelled"),
        ],
    )
    with pytest.raises(DomainError) as caught:
        budget.check_draw(plan, draw("c2", "brand-a", "8000.01", status="draft"))
    assert caught.value.field == "budget" and caught.value.context == {"available": "8000.00"}
    budget.check_draw(plan, draw("c2", "brand-a", "8000.00", status="draft"))
    # raising c1's own budget counts its old budget as free
    budget.check_draw(plan, draw("c1", "brand-a", "20000.00"))
    with pytest.raises(DomainError) as caught:
        budget.check_draw(plan, draw("c3", "other-plan-line", "1.00"))
    assert caught.value.field == "line_id"


def test_explicit_months_must_lie_in_the_period_and_add_up() -> None:
    plan = Budget(YEAR, [], [])
    good = line("brand-a", "300.00", months={"2027-01": D("100.00"), "2027-06": D("200.00")})
    budget.check_line(plan, good)
    assert tree.phasing(good, YEAR)["2027-06"] == D("200.00")
    assert tree.phasing(good, YEAR)["2027-02"] == D("0.00")
    for months, needle in (
        ({"2027-01": D("100.00"), "2027-06": D("199.99")}, "add up to 299.99"),
        ({"2026-12": D("300.00")}, "outside the plan period"),
    ):
        with pytest.raises(DomainError) as caught:
            budget.check_line(plan, line("brand-a", "300.00", months=months))
        assert caught.value.field == "months" and needle in caught.value.message


def test_the_cap_holds_what_the_plan_takes() -> None:
    plan = Budget(YEAR, [line("brand-a", "60000.00")], [draw("c", None, "5000.00", status="draft")])
    with pytest.raises(DomainError) as caught:
        budget.check_cap(plan, D("64999.99"))
    assert caught.value.field == "budget" and caught.value.context == {"taken": "65000.00"}
    budget.check_cap(plan, D("65000.00"))
    budget.check_cap(plan, None)


def test_a_line_with_sub_lines_or_campaigns_is_not_removed() -> None:
    plan = Budget(
        YEAR,
        [line("a", "10.00"), line("b", "5.00", "a"), line("c", "1.00")],
        [draw("x", "c", "1.00")],
    )
    for busy in ("a", "c"):
        with pytest.raises(DomainError):
            budget.check_removal(plan, busy)
    budget.check_removal(plan, "b")


def test_the_view_rolls_committed_and_actual_up_the_tree_by_month() -> None:
    plan = Budget(
        Period(start=dt.date(2027, 1, 1), end=dt.date(2027, 3, 31), cap=D("9000.00")),
        [line("brand-a", "8000.00"), line("partner-x", "6000.00", "brand-a")],
        [
            # 31 days of January and 28 of February: 5,900 → 3,100 + 2,800
            draw("c1", "partner-x", "5900.00", start=dt.date(2027, 1, 1), end=dt.date(2027, 2, 28)),
            draw("c2", "brand-a", "1000.00", status="draft"),  # allocated, not committed
            draw("c3", None, "300.00", start=dt.date(2027, 3, 1), end=dt.date(2027, 3, 31)),
        ],
    )
    actual = {"c1": {"2027-01": D("1200.00"), "2027-04": D("50.00")}, "c3": {"2027-03": D("10.00")}}
    root, months = tree.budget_view(plan, actual=actual)
    assert months == ["2027-01", "2027-02", "2027-03", "2027-04"]
    assert (root.total.planned, root.total.committed, root.total.actual) == (
        D("9000.00"),
        D("6200.00"),
        D("1260.00"),
    )
    assert root.total.remaining == D("7740.00")
    assert root.taken == D("8300.00") and root.available == D("700.00")
    [brand] = root.children
    assert (brand.total.planned, brand.total.committed, brand.total.actual) == (
        D("8000.00"),
        D("5900.00"),
        D("1250.00"),
    )
    assert brand.taken == D("7000.00") and brand.available == D("1000.00")
    assert brand.months["2027-01"].planned == D("2666.67")
    assert brand.months["2027-03"].planned == D("2666.66")
    assert brand.months["2027-01"].committed == D("3100.00")
    assert brand.months["2027-02"].committed == D("2800.00")
    assert brand.months["2027-04"].actual == D("50.00")
    assert brand.months["2027-04"].planned == D("0.00")
    [partner] = brand.children
    assert partner.campaign_ids == ["c1"] and partner.total.actual == D("1250.00")
    assert partner.months["2027-01"].remaining == D("800.00")  # 2,000 planned, 1,200 spent
    assert root.campaign_ids == ["c3"]


def test_a_line_gives_only_what_is_neither_held_nor_spent_and_the_receiver_must_fit() -> None:
    plan = Budget(
        Period(start=dt.date(2027, 1, 1), end=dt.date(2027, 6, 30), cap=D("10000.00")),
        [
            line("a", "4000.00"),
            line("b", "3000.00", months={"2027-01": D("1000.00"), "2027-02": D("2000.00")}),
            line("b1", "3000.00", "b"),
        ],
        [draw("c1", "a", "1000.00"), draw("c2", "a", "500.00")],
    )
    # held 1,500, spent 2,600 (over its budget): 4,000 − 2,600 = 1,400 may move
    spent = {"c1": D("2600.00")}
    with pytest.raises(DomainError) as caught:
        budget.move_between_lines(
            plan,
            source_id="a",
            destination_id="b",
            amount=D("1400.01"),
            actual=spent,
            today=dt.date(2027, 3, 15),
        )
    assert caught.value.context == {"available": "1400.00"}
    source, destination = budget.move_between_lines(
        plan,
        source_id="a",
        destination_id="b",
        amount=D("300.00"),
        actual=spent,
        today=dt.date(2027, 3, 15),
    )
    assert (source.amount, source.months, source.version) == (D("3700.00"), None, 2)
    # by hand: the past months stay, 300 spread over March … June
    assert destination.months == {
        "2027-01": D("1000.00"),
        "2027-02": D("2000.00"),
        "2027-03": D("75.00"),
        "2027-04": D("75.00"),
        "2027-05": D("75.00"),
        "2027-06": D("75.00"),
    }
    # b's own months ahead are empty: it cannot give from them
    with pytest.raises(DomainError) as caught:
        budget.move_between_lines(
            plan,
            source_id="b",
            destination_id="a",
            amount=D("1.00"),
            actual={},
            today=dt.date(2027, 3, 15),
        )
    assert caught.value.field == "amount"
    # a sub-line cannot outgrow its parent
    with pytest.raises(DomainError) as caught:
        budget.move_between_lines(
            plan,
            source_id="a",
            destination_id="b1",
            amount=D("1.00"),
            actual={},
            today=dt.date(2027, 1, 1),
        )
    assert caught.value.context == {"available": "0.00"}


def test_a_campaign_gives_only_its_unspent_budget() -> None:
    budget.check_unspent(budget=D("2500.00"), spent=D("2000.00"), amount=D("500.00"), name="c")
    with pytest.raises(DomainError) as caught:
        budget.check_unspent(budget=D("2500.00"), spent=D("2600.00"), amount=D("0.01"), name="c")
    assert caught.value.context == {"available": "0.00"}
