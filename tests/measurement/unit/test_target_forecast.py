"""Sales-target forecast — run rate, campaign pipeline, total against target — against figures
computed by hand (``target_forecast``, ``pipeline.expected_by``)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from fractions import Fraction as F

from services.measurement import pipeline, target_forecast, warehouse
from services.measurement.pipeline import Amounts, History, OpenLeads
from services.measurement.progress import SalesTarget, Unit
from services.measurement.target_forecast import NodeForecast, UnitPipeline
from services.measurement.target_forecast_models import SalesTargetForecast
from services.measurement.warehouse import StoredEvent
from shared.events import new_envelope
from shared.events.planning import CampaignPlanned
from shared.money import FxRates
from shared.sales_attribution import SaleGroup

START, END = dt.date(2027, 5, 1), dt.date(2027, 5, 31)
AS_OF = dt.datetime(2027, 5, 11, tzinfo=dt.UTC)  # 10 of 31 days: run rate × 3.1
FX = FxRates(base="EUR", rates={"USD": D("0.5")})

UNITS = [
    Unit("co", "company", "co"),
    Unit("emea", "region", "emea", parent_id="co", code="EMEA"),
    Unit("north", "division", "north", parent_id="co", code="NORTH"),
    Unit("a", "rep", "rep a", parent_id="emea", code="rep-a"),
]
TARGETS = [
    SalesTarget("t-co", "co", "2027-05", START, END, D("1000"), "EUR"),
    SalesTarget("t-emea", "emea", "2027-05", START, END, D("300"), "EUR"),
]
# K plans against rep a; L against no unit
SALES = {
    "K": [
        SaleGroup(D("100"), "EUR", rep_id="rep-a", region="EMEA"),
        SaleGroup(D("20"), "EUR", region="NORTH"),  # K's, but the North is not K's unit
    ],
    "L": [SaleGroup(D("50"), "EUR", region="EMEA")],
}
CAMPAIGNS_OF = {"a": ("K",), "emea": ("K",), "co": ("K",)}
PIPELINE = UnitPipeline(("K",), 2, Amounts(D("0.45"), D("75.00")))


def tree(**kw) -> dict[str, NodeForecast]:  # type: ignore[no-untyped-def]
    args = {
        "units": UNITS,
        "targets": TARGETS,
        "sales": SALES,
        "campaigns_of": CAMPAIGNS_OF,
        "pipelines": {unit: PIPELINE for unit in CAMPAIGNS_OF},
        "brand": None,
        "start": START,
        "end": END,
        "now": AS_OF,
        "fx": FX,
        **kw,
    }
    nodes: dict[str, NodeForecast] = {}
    stack = list(target_forecast.forecast_tree(**args))
    while stack:
        node = stack.pop()
        nodes[node.unit.unit_id] = node
        stack.extend(node.children)
    return nodes


def test_campaigns_of_a_unit_are_those_of_it_and_beneath_it() -> None:
    found = target_forecast.campaigns_of_units(UNITS, {"K": "a", "M": "north", "Z": "ghost"})
    assert found == {"a": ("K",), "emea": ("K",), "north": ("M",), "co": ("K", "M")}


def test_forecast_is_campaign_sales_plus_pipeline_plus_the_others_run_rate() -> None:
    nodes = tree()
    fields = ["sales", "run_rate", "campaign_sales", "other_sales", "other_run_rate"]
    fields += ["forecast", "gap", "forecast_share", "on_track"]
    figures = {key: " ".join(str(getattr(n, f)) for f in fields) for key, n in nodes.items()}
    # a: 100 of K + 75.00 pipeline + nothing else; run rate 100 × 3.1
    # emea: 100 (K) + 75.00 + 50 (L) × 3.1 = 330.00 against 300: 30.00 over
    # north: K's 20 is not the North's campaign: 20 × 3.1 = 62.00, no pipeline
    # co: K's 100 + 20 + 75.00 + 50 × 3.1 = 350.00 against 1000: 650.00 short
    assert figures == {
        "a": "100.00 310.00 100.00 0.00 0.00 175.00 None None None",
        "emea": "150.00 465.00 100.00 50.00 155.00 330.00 -30.00 1.100000 True",
        "north": "20.00 62.00 0.00 20.00 62.00 62.00 None None None",
        "co": "170.00 527.00 120.00 50.00 155.00 350.00 650.00 0.350000 False",
    }
    assert nodes["north"].pipeline is None and nodes["co"].pipeline == PIPELINE
    assert [c.unit.unit_id for c in nodes["co"].children] == ["emea", "north"]


def test_a_pipeline_without_revenue_leaves_the_forecast_unknown() -> None:
    unknown = UnitPipeline(("K",), 1, Amounts(D("0.50"), None))
    nodes = tree(pipelines={unit: unknown for unit in CAMPAIGNS_OF})
    assert (nodes["emea"].forecast, nodes["emea"].gap, nodes["emea"].on_track) == (None, None, None)
    assert nodes["north"].forecast == D("62.00")  # no campaigns: the run rate alone


def test_before_the_period_nothing_runs_at_a_rate() -> None:
    nodes = tree(now=dt.datetime(2027, 4, 20, tzinfo=dt.UTC), sales={})
    assert (nodes["co"].run_rate, nodes["co"].other_run_rate, nodes["co"].forecast) == (
        None,
        None,
        None,
    )


def test_other_currencies_convert_and_unrated_ones_stay_apart() -> None:
    sales = {"": [SaleGroup(D("40"), "USD", region="NORTH"), SaleGroup(D("9"), "GBP")]}
    nodes = tree(sales=sales)
    # 40 USD = 20 EUR, × 3.1; GBP has no rate
    assert (nodes["north"].sales, nodes["north"].forecast) == (D("20.00"), D("62.00"))
    assert nodes["co"].unconverted == {"GBP": D("9")}
    assert nodes["co"].forecast == D("137.00")  # 75.00 + 20 × 3.1


# history of K: 5 leads reached `lead`, 2 became customers, after 10 and 30 days
HISTORY = History(
    reached=(5, 5, 2, 2, 2, 2, 2),
    days_to_customer={"lead": [F(10), F(30)]},
    average_check=D("60.00"),
)
LEADS = [
    # waited 3 days: q = 2/5, 1/5 each at 7 and 27 days ahead, worth 300.00
    OpenLeads("lead", AS_OF - dt.timedelta(days=3), 1, valued=1, value_sum=D("300")),
    # waited 10 days: only the 30-day duration is left, S = 1/2,
    # q = (2/5 · 1/2) / (1 − 2/5 + 1/5) = 1/4 at 20 days ahead, worth the average check 60.00
    OpenLeads("lead", AS_OF - dt.timedelta(days=10), 1),
]


def test_the_pipeline_counts_the_conversions_before_the_period_ends() -> None:
    # the period ends 21 days after as_of: 1/5 × 300 + 1/4 × 60, not the 27-day arrival
    found = target_forecast.unit_pipeline(
        campaigns=("K",), leads=LEADS, history=HISTORY, as_of=AS_OF, start=START, end=END
    )
    assert found == UnitPipeline(("K",), 2, Amounts(D("0.45"), D("75.00")))
    later = dt.datetime(2027, 6, 8, tzinfo=dt.UTC)  # 28 days: all three arrivals
    every = pipeline.expected_by(leads=LEADS, history=HISTORY, as_of=AS_OF, until=later)
    assert every == Amounts(D("0.65"), D("135.00"))
    assert pipeline.expected_by(leads=LEADS, history=HISTORY, as_of=AS_OF, until=AS_OF) == Amounts(
        D("0.00"), D("0.00")
    )


def test_before_the_period_the_pipeline_counts_from_its_start() -> None:
    # as of 11 May, for June: only o1's arrival 27 days ahead (7 June) falls in it
    june = target_forecast.unit_pipeline(
        campaigns=("K",),
        leads=LEADS,
        history=HISTORY,
        as_of=AS_OF,
        start=dt.date(2027, 6, 1),
        end=dt.date(2027, 6, 30),
    )
    assert june.expected == Amounts(D("0.20"), D("60.00"))


def test_expected_by_agrees_with_the_weekly_forecast() -> None:
    weekly = pipeline.forecast(leads=LEADS, history=HISTORY, as_of=AS_OF, weeks=3)
    three = pipeline.expected_by(
        leads=LEADS, history=HISTORY, as_of=AS_OF, until=AS_OF + dt.timedelta(weeks=3)
    )
    assert three == weekly.totals


def test_the_openapi_example_is_a_valid_answer() -> None:
    example = SalesTargetForecast.model_config["json_schema_extra"]["examples"][0]  # type: ignore[index]
    answer = SalesTargetForecast.model_validate(example)
    emea = answer.units[0]
    assert emea.forecast == emea.campaign_sales + D("75.00") + (emea.other_run_rate or 0)
    assert (emea.gap, emea.on_track) == (D("-30.00"), True)


def test_a_campaign_row_keeps_its_sales_unit() -> None:
    def row(unit: str | None) -> dict[str, object]:
        data = CampaignPlanned(
            campaign_id="K",
            plan_id="p",
            name="K",
            channel="search",
            owner="ann",
            budget=D("1"),
            currency="EUR",
            start_date=START,
            end_date=END,
            sales_unit_id=unit,
        )
        envelope = new_envelope(data, source="test", occurred_at=AS_OF)
        event = StoredEvent(envelope=envelope, data=data, topic=data.topic, partition=0, offset=0)
        (values,) = warehouse.rows_by_table([event])["campaigns"]
        return dict(zip(warehouse.COLUMNS["campaigns"], values, strict=True))

    assert row("a")["sales_unit_id"] == "a"
    assert row(None)["sales_unit_id"] == ""
