"""Splits by past sales and sales plans without I/O: shares from the attributed sales of a
reference period (brand-filtered, converted, cents adding up to the target), the 422s naming
``reference_period``, uplift phased by days into a period, baselines — every figure by hand."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from services.planning import sales, sales_plan
from services.planning.sales import TargetFacts, UnitFacts
from services.planning.sales_plan import Uplift
from shared import budget
from shared.errors import DomainError
from shared.money import FxRates
from shared.sales_attribution import SaleGroup

D = Decimal
FX = FxRates(base="EUR", rates={"USD": D("0.5")})
COMPANY = UnitFacts(unit_id="co", name="Acme", kind="company", owner="carla")
NORTH = UnitFacts(unit_id="n", name="North", kind="region", owner="nina", parent_id="co", code="N")
ANN = UnitFacts(unit_id="a", name="Ann", kind="rep", owner="ann", parent_id="n", code="rep-a")
BO = UnitFacts(unit_id="b", name="Bo", kind="rep", owner="bo", parent_id="n", code="rep-b")
CY = UnitFacts(unit_id="c", name="Cy", kind="rep", owner="cy", parent_id="n", code="rep-c")
UNITS = [COMPANY, NORTH, ANN, BO, CY]
REPS = [ANN, BO, CY]
GROUPS = [
    SaleGroup(amount=D("300.00"), currency="EUR", rep_id="rep-a", brand="X"),
    SaleGroup(amount=D("200.00"), currency="EUR", rep_id="rep-b", region="N", brand="X"),
    SaleGroup(amount=D("200.00"), currency="USD", rep_id="rep-c", brand="X"),  # 100.00 EUR
    SaleGroup(amount=D("500.00"), currency="EUR", rep_id="rep-c", brand="Y"),
    SaleGroup(amount=D("40.00"), currency="EUR", region="N"),  # the region's, no rep's
]


def _target(amount: str, *, brand: str = "", currency: str = "EUR") -> TargetFacts:
    return TargetFacts(
        target_id="t-n",
        unit_id="n",
        period="2027-Q1",
        brand=brand,
        amount=D(amount),
        currency=currency,
    )


def _split(target: TargetFacts, groups: list[SaleGroup]) -> dict[str, Decimal]:
    reference = sales.reference_sales(
        REPS, units=UNITS, groups=groups, target=target, reference_period="2026-Q1", fx=FX
    )
    return sales.split_target(target, REPS, method="reference", shares=None, reference=reference)


def test_a_brand_target_splits_by_that_brand_sales_to_the_cent() -> None:
    # X only: 300 : 200 : 100 (200 USD at 0.5) → 500.00, 333.33, 166.66 and the cent left
    # over to the first child
    parts = _split(_target("1000.00", brand="X"), GROUPS)
    assert parts == {"a": D("500.01"), "b": D("333.33"), "c": D("166.66")}
    assert sum(parts.values()) == D("1000.00")
    # a sale of another brand in a currency without a rate is not the split's concern
    other = SaleGroup(amount=D("5.00"), currency="GBP", rep_id="rep-a", brand="Y")
    assert _split(_target("1000.00", brand="X"), [*GROUPS, other]) == parts


def test_a_target_of_all_brands_splits_by_all_sales() -> None:
    # 300 : 200 : 600 (the 500 of brand Y counts now); the region's own 40 is no child's
    parts = _split(_target("1100.00"), GROUPS)
    assert parts == {"a": D("300.00"), "b": D("200.00"), "c": D("600.00")}


def test_a_child_that_sold_nothing_gets_nothing_not_even_a_left_over_cent() -> None:
    parts = _split(_target("100.00", brand="X"), [g for g in GROUPS if g.rep_id != "rep-a"])
    # 200 : 100 → 66.66 + 33.33, the cent to the first child that sold
    assert parts == {"a": D("0.00"), "b": D("66.67"), "c": D("33.33")}
    assert budget.split(D("0.05"), {"x": 0, "y": 1, "z": 1}) == {
        "x": D("0.00"),
        "y": D("0.03"),
        "z": D("0.02"),
    }


def test_no_sales_or_no_rate_leaves_nothing_to_split_by() -> None:
    for groups, message in (
        ([], "sold nothing in 2026-Q1"),
        ([g for g in GROUPS if g.brand == "Y"], "sold nothing in 2026-Q1 of brand 'X'"),
        (
            [*GROUPS, SaleGroup(amount=D("5.00"), currency="GBP", rep_id="rep-b", brand="X")],
            "sales in GBP of 2026-Q1 cannot be converted to EUR",
        ),
    ):
        with pytest.raises(DomainError) as caught:
            _split(_target("1000.00", brand="X"), groups)
        assert caught.value.field == "reference_period" and caught.value.status_code == 422
        assert message in caught.value.message
    with pytest.raises(DomainError) as caught:
        sales.split_target(_target("1.00"), REPS, method="reference", shares=None)
    assert caught.value.field == "reference_period"
    with pytest.raises(DomainError) as caught:
        sales.months_of("1969-Q1", field="reference_period")
    assert caught.value.field == "reference_period"


def test_uplift_is_phased_by_days_into_the_period() -> None:
    # 12 days in March, 10 in April: 1000 × 12/22 = 545.45 (+ the left-over cent), 454.54
    uplift = Uplift(
        campaign_id="c-1",
        unit_id="a",
        amount=D("1000.00"),
        currency="EUR",
        start_date=dt.date(2027, 3, 20),
        end_date=dt.date(2027, 4, 10),
        status="approved",
    )
    q1, q2 = sales.months_of("2027-Q1"), sales.months_of("2027-Q2")
    assert sales_plan.uplift_in(uplift, q1) == D("545.46")
    assert sales_plan.uplift_in(uplift, q2) == D("454.54")
    assert sales_plan.uplift_in(uplift, sales.months_of("2027-05")) == D("0.00")
    assert sales_plan.year_before(q1) == ["2026-01", "2026-02", "2026-03"]


def _uplift(unit_id: str, amount: str, **facts: object) -> Uplift:
    values: dict[str, object] = {
        "campaign_id": f"c-{unit_id}-{amount}",
        "unit_id": unit_id,
        "amount": D(amount),
        "currency": "EUR",
        "start_date": dt.date(2027, 1, 1),
        "end_date": dt.date(2027, 1, 31),
        "status": "approved",
        "brand": "X",
    }
    return Uplift(**{**values, **facts})  # type: ignore[arg-type]


def test_each_node_plans_last_years_sales_plus_the_uplift_beneath_it() -> None:
    uplifts = [
        _uplift("a", "1000.00", start_date=dt.date(2027, 3, 20), end_date=dt.date(2027, 4, 10)),
        _uplift("n", "300.00"),
        _uplift("b", "999.00", status="cancelled"),
        _uplift("c", "80.00", currency="USD"),  # 40.00 EUR
        _uplift("c", "7.00", currency="GBP"),  # no rate: apart
        _uplift("c", "200.00", brand="Y"),
    ]
    months = sales.months_of("2027-Q1")
    everything = sales_plan.sales_plans(
        units=UNITS,
        targets=[_target("1.00", currency="USD")],  # North reports in its target's USD
        last_year=GROUPS,
        uplifts=uplifts,
        months=months,
        brand="",
        fx=FX,
    )
    figures = {
        unit: (plan.currency, plan.baseline, plan.planned_uplift, plan.sales_plan)
        for unit, plan in everything.items()
    }
    assert figures == {
        "co": ("EUR", D("1140.00"), D("1085.46"), D("2225.46")),
        # 1140 EUR = 2280 USD, 1085.46 EUR = 2170.92 USD
        "n": ("USD", D("2280.00"), D("2170.92"), D("4450.92")),
        "a": ("EUR", D("300.00"), D("545.46"), D("845.46")),
        "b": ("EUR", D("200.00"), D("0.00"), D("200.00")),
        "c": ("EUR", D("600.00"), D("240.00"), D("840.00")),
    }
    assert everything["c"].unconverted == {"GBP": D("7.00")}
    assert everything["co"].unconverted == {"GBP": D("7.00")}
    brand_x = sales_plan.sales_plans(
        units=UNITS, targets=[], last_year=GROUPS, uplifts=uplifts, months=months, brand="X", fx=FX
    )
    assert (brand_x["c"].baseline, brand_x["c"].planned_uplift) == (D("100.00"), D("40.00"))
    assert brand_x["n"].sales_plan == D("600.00") + D("885.46")
    no_data = sales_plan.sales_plans(
        units=UNITS, targets=[], last_year=[], uplifts=uplifts, months=months, brand="", fx=FX
    )
    assert no_data["a"].baseline is None and no_data["a"].sales_plan is None
    assert no_data["a"].planned_uplift == D("545.46")
