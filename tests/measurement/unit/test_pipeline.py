"""The pipeline forecast's arithmetic against figures computed by hand (``pipeline``)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from fractions import Fraction as F

import pytest

from services.measurement import pipeline
from services.measurement.pipeline import Amounts, History, OpenLeads

AS_OF = dt.datetime(2027, 3, 1, 9, tzinfo=dt.UTC)
# leads reaching visitor … customer or later: lead→customer 4/20, mql 4/10, sql 4/8,
# sal 4/8, opportunity 4/5
REACHED = (20, 20, 10, 8, 8, 5, 4)
DURATIONS = {
    "lead": [F(5)],
    "mql": [F(7), F(14), F(21), F(28)],
    "sql": [F(14), F(21), F(28), F(100)],
    "opportunity": [F(3), F(10)],
}


def ago(days: int) -> dt.datetime:
    return AS_OF - dt.timedelta(days=days)


def history(average_check: str | None = "100.00", durations=DURATIONS) -> History:  # type: ignore[no-untyped-def]
    return History(
        reached=REACHED,
        days_to_customer=durations,
        average_check=None if average_check is None else D(average_check),
    )


def test_ten_open_leads_by_hand() -> None:
    leads = [
        # opportunity, fresh: q = 4/5, 2/5 per lead at day 3 (week 1) and day 10 (week 2)
        OpenLeads("opportunity", AS_OF, 2),
        # mql, waited 10 days: 3 of 4 durations remain, q = (2/5·3/4) / (3/5 + 3/10) = 1/3,
        # 1/9 per lead at 4, 11 and 18 days ahead (weeks 1, 2, 3)
        OpenLeads("mql", ago(10), 3),
        # sql, waited 7 days: all remain, q = 1/2, 1/8 per lead at 7, 14, 21 and 93 days ahead
        # (weeks 2, 3, 4; the last after the 12 weeks)
        OpenLeads("sql", ago(7), 4),
        # lead, waited 30 days: longer than any measured lead → customer (5 days): stale
        OpenLeads("lead", ago(30), 1),
    ]
    result = pipeline.forecast(leads=leads, history=history(), as_of=AS_OF)
    assert result.open_leads == 10
    assert len(result.weeks) == 12
    assert [w.start for w in result.weeks[:2]] == [AS_OF, AS_OF + dt.timedelta(days=7)]
    expected = [
        Amounts(D("1.13"), D("113.33")),  # 4/5 + 1/3 = 17/15
        Amounts(D("1.63"), D("163.33")),  # 4/5 + 1/3 + 1/2 = 49/30
        Amounts(D("0.83"), D("83.33")),  # 1/3 + 1/2
        Amounts(D("0.50"), D("50.00")),
    ]
    assert [w.expected for w in result.weeks[:4]] == expected
    assert all(w.expected == Amounts(D("0.00"), D("0.00")) for w in result.weeks[4:])
    assert result.totals == Amounts(D("4.10"), D("410.00"))  # 123/30, exact before rounding
    assert result.later == Amounts(D("0.50"), D("50.00"))
    rates = {r.stage: r for r in result.rates}
    assert [r.stage for r in result.rates] == list(pipeline.OPEN_STAGES)
    assert (rates["mql"].to_customer, rates["mql"].to_next) == (D("0.400000"), D("0.800000"))
    assert rates["mql"].median_days_to_customer == D("17.50")
    assert rates["sql"].median_days_to_customer == D("24.50")
    assert rates["opportunity"].to_customer == D("0.800000")
    assert (rates["sql"].open_leads, rates["sql"].timed_customers) == (4, 4)
    assert rates["sal"].median_days_to_customer is None and rates["sal"].timed_customers == 0


def test_expected_value_where_given_else_average_check() -> None:
    # 5 fresh opportunities, 3 valued at 1000 each, 2 at the average check 500: 800 per lead
    leads = [OpenLeads("opportunity", AS_OF, 5, valued=3, value_sum=D("3000.00"))]
    result = pipeline.forecast(leads=leads, history=history("500.00"), as_of=AS_OF, weeks=2)
    assert [w.expected for w in result.weeks] == [Amounts(D("2.00"), D("1600.00"))] * 2
    assert result.totals == Amounts(D("4.00"), D("3200.00"))
    assert result.later == Amounts(D("0.00"), D("0.00"))


def test_revenue_is_unknown_only_when_a_lead_that_may_convert_has_no_value() -> None:
    valued = OpenLeads("opportunity", AS_OF, 1, valued=1, value_sum=D("250.00"))
    stale = OpenLeads("lead", ago(30), 4)  # no value, but expects nothing
    ok = pipeline.forecast(leads=[valued, stale], history=history(None), as_of=AS_OF, weeks=2)
    assert ok.totals == Amounts(D("0.80"), D("200.00"))
    unvalued = OpenLeads("opportunity", AS_OF, 1)
    unknown = pipeline.forecast(leads=[valued, unvalued], history=history(None), as_of=AS_OF)
    assert unknown.weeks[0].expected == Amounts(D("0.80"), None)
    assert unknown.totals.revenue is None and unknown.totals.customers == D("1.60")


def test_a_stage_without_measured_timing_counts_later() -> None:
    leads = [OpenLeads("sal", ago(3), 2)]  # sal → customer 1/2, no duration measured
    result = pipeline.forecast(leads=leads, history=history(), as_of=AS_OF)
    assert result.totals == Amounts(D("0.00"), D("0.00"))
    assert result.later == Amounts(D("1.00"), D("100.00"))


def test_no_history_expects_nothing() -> None:
    empty = History(reached=(0,) * 7, days_to_customer={}, average_check=None)
    result = pipeline.forecast(leads=[OpenLeads("mql", AS_OF, 3)], history=empty, as_of=AS_OF)
    assert result.totals == Amounts(D("0.00"), D("0.00"))
    assert all(r.to_customer is None for r in result.rates)


@pytest.mark.parametrize(
    ("p", "remaining", "measured", "expected"),
    [(F(2, 5), 3, 4, F(1, 3)), (F(1), 0, 3, F(0)), (F(1), 1, 2, F(1)), (F(1, 2), 2, 0, F(0))],
)
def test_conditional_conversion(p: F, remaining: int, measured: int, expected: F) -> None:
    assert pipeline.conditional_conversion(p, remaining, measured) == expected


def test_weeks_are_bounded_and_stages_open() -> None:
    with pytest.raises(ValueError, match="weeks"):
        pipeline.forecast(leads=[], history=history(), as_of=AS_OF, weeks=0)
    with pytest.raises(ValueError, match="stage"):
        pipeline.forecast(leads=[OpenLeads("customer", AS_OF, 1)], history=history(), as_of=AS_OF)
