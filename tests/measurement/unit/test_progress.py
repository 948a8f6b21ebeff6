"""Sales-target progress, pure: attribution roll-up without double counting, the run rate,
currencies, the tree, and at-risk episodes — every figure computed by hand."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

from services.measurement import progress
from services.measurement.progress import AtRiskRule, SalesTarget, Unit
from shared.money import FxRates, in_currency
from shared.sales_attribution import SaleGroup, roll_up

UNITS = [
    Unit(unit_id="co", kind="company", name="Company", owner="cmo"),
    Unit(unit_id="emea", kind="region", name="EMEA", owner="ann", parent_id="co", code="EMEA"),
    Unit(unit_id="north", kind="division", name="North", owner="bo", parent_id="co", code="N"),
    Unit(unit_id="a", kind="rep", name="Rep A", owner="al", parent_id="emea", code="rep-a"),
    Unit(unit_id="p", kind="partner", name="Partner", owner="pi", parent_id="emea", code="p-1"),
    Unit(unit_id="b", kind="rep", name="Rep B", owner="be", parent_id="north", code="rep-b"),
]
GROUPS = [
    # a rep and a partner of EMEA, in EMEA: once for EMEA, once for the company
    SaleGroup(amount=D(100), currency="EUR", rep_id="rep-a", partner_id="p-1", region="EMEA"),
    SaleGroup(amount=D(50), currency="EUR", rep_id="rep-b"),
    SaleGroup(amount=D(30), currency="EUR", partner_id="p-1"),
    SaleGroup(amount=D(20), currency="EUR"),  # no unit: the company's only
    # rep A (under EMEA) selling in the North division: both count it
    SaleGroup(amount=D(10), currency="EUR", rep_id="rep-a", region="N"),
    SaleGroup(amount=D(7), currency="EUR", rep_id="nobody-known"),
]
APRIL = (dt.date(2027, 4, 1), dt.date(2027, 4, 30))
FX = FxRates(base="EUR", rates={"USD": D("0.9")})


def _at(day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2027, 4, day, hour, tzinfo=dt.UTC)


def _target(unit_id: str, amount: int, *, brand: str | None = None) -> SalesTarget:
    return SalesTarget(
        target_id=f"t-{unit_id}",
        unit_id=unit_id,
        period="2027-04",
        period_start=APRIL[0],
        period_end=APRIL[1],
        amount=D(amount),
        currency="EUR",
        brand=brand,
    )


def test_roll_up_counts_each_sale_once_per_node() -> None:
    totals = roll_up(UNITS, GROUPS)
    assert {unit: amounts["EUR"] for unit, amounts in totals.items()} == {
        "co": D(217),
        "emea": D(140),  # 100 + 30 + 10 (rep A's, wherever sold)
        "north": D(60),  # 50 + 10
        "a": D(110),
        "p": D(130),
        "b": D(50),
    }


def test_run_rate_forecasts_to_the_period_end() -> None:
    start, end = APRIL
    ten_days = progress.pace(start=start, end=end, now=_at(11), sales=D(100))
    assert ten_days.elapsed_share == D(1) / D(3)
    assert ten_days.forecast == D(300)
    half_day = progress.pace(start=start, end=end, now=_at(1, 12), sales=D(10))
    assert half_day.forecast == D(600)  # 10 in 12 h of a 30-day month
    before = progress.pace(start=start, end=end, now=_at(1) - dt.timedelta(days=2), sales=D(0))
    assert before.elapsed_share == 0 and before.forecast is None
    after = progress.pace(start=start, end=end, now=_at(1) + dt.timedelta(days=45), sales=D(80))
    assert after.elapsed_share == 1 and after.forecast == D(80)


def test_sales_in_other_currencies_are_converted_or_kept_apart() -> None:
    total, unconverted = in_currency(
        {"EUR": D(10), "USD": D(100), "GBP": D(5)}, currency="EUR", fx=FX
    )
    assert total == D(100) and unconverted == {"GBP": D(5)}


def test_tree_figures() -> None:
    tree = progress.progress_tree(
        units=UNITS,
        targets=[_target("co", 600), _target("emea", 300), _target("b", 0)],
        groups=GROUPS,
        brand=None,
        start=APRIL[0],
        end=APRIL[1],
        now=_at(11),
        fx=FX,
        rule=AtRiskRule(),
    )
    [company] = tree
    assert [child.unit.unit_id for child in company.children] == ["emea", "north"]
    assert (company.sales, company.forecast) == (D("217.00"), D("651.00"))
    assert (company.share, company.forecast_share) == (D("0.361667"), D("1.085000"))
    assert company.at_risk is False
    emea = company.children[0]
    assert (emea.sales, emea.forecast, emea.share) == (D("140.00"), D("420.00"), D("0.466667"))
    assert emea.forecast_share == D("1.400000")
    assert [child.unit.unit_id for child in emea.children] == ["p", "a"]  # by name
    north = company.children[1]
    assert north.target is None and north.share is None and north.forecast == D("180.00")
    rep_b = north.children[0]
    assert rep_b.share is None and rep_b.forecast_share is None and rep_b.at_risk is False


def test_a_brand_reads_its_targets_and_sales() -> None:
    groups = [
        SaleGroup(amount=D(40), currency="EUR", rep_id="rep-a", brand="Acme"),
        SaleGroup(amount=D(90), currency="EUR", rep_id="rep-a", brand="Other"),
    ]
    targets = [_target("a", 100, brand="Acme"), _target("co", 999)]
    tree = progress.progress_tree(
        units=UNITS,
        targets=targets,
        groups=groups,
        brand="Acme",
        start=APRIL[0],
        end=APRIL[1],
        now=_at(16),
        fx=FX,
        rule=AtRiskRule(),
    )
    nodes = {node.unit.unit_id: node for node in progress.walk(tree)}
    assert nodes["co"].target is None and nodes["co"].sales == D(40)
    assert nodes["a"].forecast == D("80.00") and nodes["a"].forecast_share == D("0.800000")
    assert nodes["a"].at_risk is True


def _judge(sales: int, *, now: dt.datetime, states: dict[str, bool]) -> list[str]:
    tree = progress.progress_tree(
        units=UNITS,
        targets=[_target("b", 1000)],
        groups=[SaleGroup(amount=D(sales), currency="EUR", rep_id="rep-b")],
        brand=None,
        start=APRIL[0],
        end=APRIL[1],
        now=now,
        fx=FX,
        rule=AtRiskRule(share=D("0.9"), min_elapsed=D("0.2")),
    )
    events = progress.transitions(
        nodes=progress.walk(tree), states=states, rule=AtRiskRule(), now=now
    )
    return [f"{e.event_type}:{e.target_id}:{e.forecast}:{e.forecast_share}" for e in events]


def test_at_risk_episodes() -> None:
    # 3 of 30 days: too early to judge a forecast of 250 × 10 = 2500 … or of 20 × 10
    assert _judge(20, now=_at(4), states={}) == []
    # 10 days, 250 → 750 = 0.75 of 1000: at risk, once
    assert _judge(250, now=_at(11), states={}) == ["sales_target.at_risk:t-b:750.00:0.750000"]
    assert _judge(250, now=_at(11), states={"t-b": True}) == []
    # 15 days, 440 → 880: still below 0.9, nothing new
    assert _judge(440, now=_at(16), states={"t-b": True}) == []
    # 15 days, 450 → 900: recovered
    assert _judge(450, now=_at(16), states={"t-b": True}) == [
        "sales_target.recovered:t-b:900.00:0.900000"
    ]
    assert _judge(450, now=_at(16), states={"t-b": False}) == []
