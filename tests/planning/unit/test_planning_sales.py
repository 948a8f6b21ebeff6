"""The sales-target cascade without I/O: periods, the unit tree's shape, splits that add up to
the target, and the roll-up of children against their parent."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from services.planning import sales
from services.planning.sales import TargetFacts, UnitFacts
from shared.errors import DomainError

D = Decimal
COMPANY = UnitFacts(unit_id="co", name="Acme", kind="company", owner="carla")
NORTH = UnitFacts(unit_id="n", name="North", kind="region", owner="nina", parent_id="co")
SOUTH = UnitFacts(unit_id="s", name="South", kind="region", owner="sam", parent_id="co")
REP = UnitFacts(unit_id="r", name="Rita", kind="rep", owner="rita", parent_id="n", code="rep-7")
UNITS = {u.unit_id: u for u in (COMPANY, NORTH, SOUTH, REP)}


def target(unit_id: str, amount: str) -> TargetFacts:
    return TargetFacts(
        target_id=f"t-{unit_id}",
        unit_id=unit_id,
        period="2027-Q1",
        brand="",
        amount=D(amount),
        currency="EUR",
    )


@pytest.mark.parametrize(
    ("period", "bounds"),
    [
        ("2027-02", (dt.date(2027, 2, 1), dt.date(2027, 2, 28))),
        ("2028-02", (dt.date(2028, 2, 1), dt.date(2028, 2, 29))),
        ("2027-Q1", (dt.date(2027, 1, 1), dt.date(2027, 3, 31))),
        ("2027-Q4", (dt.date(2027, 10, 1), dt.date(2027, 12, 31))),
    ],
)
def test_periods_are_months_or_quarters(period: str, bounds: tuple[dt.date, dt.date]) -> None:
    assert sales.period_bounds(period) == bounds


@pytest.mark.parametrize("period", ["2027-13", "2027-Q5", "2027", "1969-01", "27-01"])
def test_other_periods_are_refused(period: str) -> None:
    with pytest.raises(DomainError) as caught:
        sales.period_bounds(period)
    assert caught.value.field == "period"


def test_the_tree_runs_company_region_rep_and_codes_are_unique_per_kind() -> None:
    sales.check_unit(
        UnitFacts(unit_id="p", name="ShopCo", kind="partner", owner="x", parent_id="s"), UNITS
    )
    for unit, field in (
        (UnitFacts(unit_id="x", name="X", kind="region", owner="x"), "parent_id"),
        (UnitFacts(unit_id="x", name="X", kind="region", owner="x", parent_id="r"), "kind"),
        (UnitFacts(unit_id="x", name="X", kind="company", owner="x", parent_id="co"), "kind"),
        (UnitFacts(unit_id="x", name="X", kind="rep", owner="x", parent_id="zz"), "parent_id"),
        (
            UnitFacts(unit_id="x", name="X", kind="rep", owner="x", parent_id="s", code="rep-7"),
            "code",
        ),
    ):
        with pytest.raises(DomainError) as caught:
            sales.check_unit(unit, UNITS)
        assert caught.value.field == field


def test_even_and_share_splits_add_up_to_the_target() -> None:
    parent = target("co", "100000.01")
    even = sales.split_target(parent, [NORTH, SOUTH], method="even", shares=None)
    assert even == {"n": D("50000.01"), "s": D("50000.00")}
    shares = sales.split_target(
        parent, [NORTH, SOUTH], method="shares", shares={"n": D("0.7"), "s": D("0.3")}
    )
    assert shares == {"n": D("70000.01"), "s": D("30000.00")}
    for bad, field in (
        ({"n": D("0.7"), "s": D("0.2")}, "shares"),
        ({"n": D("1"), "r": D("0")}, "shares"),
        (None, "shares"),
    ):
        with pytest.raises(DomainError) as caught:
            sales.split_target(parent, [NORTH, SOUTH], method="shares", shares=bad)
        assert caught.value.field == field
    with pytest.raises(DomainError):
        sales.split_target(target("r", "5"), [], method="even", shares=None)


def test_each_node_shows_its_children_sum_and_the_gap() -> None:
    [root] = sales.target_tree(
        UNITS.values(), [target("co", "100000"), target("n", "70000"), target("s", "25000")]
    )
    assert (root.children_sum, root.gap) == (D("95000"), D("5000"))
    north, south = root.children
    assert north.children[0].target is None and north.children_sum is None and north.gap is None
    assert south.target is not None and south.target.amount == D("25000")
