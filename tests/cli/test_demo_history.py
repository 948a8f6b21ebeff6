"""The demo's past campaigns: runs one after the other, all over before this year's plan
starts (20 days ago), each bigger budget buying clicks at a worse rate."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

from mrm import demo_history
from mrm.demo import SAMPLE


def test_the_past_runs_end_before_the_demo_plan_starts() -> None:
    today = dt.date(2026, 12, 3)
    starts = demo_history.schedule(today, 12)
    assert starts == sorted(starts) and len(set(starts)) == 12
    last_end = starts[-1] + dt.timedelta(days=demo_history.DAYS - 1)
    assert last_end < today - dt.timedelta(days=20)  # this year's campaigns start 20 days ago
    gaps = {(b - a).days for a, b in itertools.pairwise(starts)}
    assert gaps == {demo_history.DAYS + demo_history.GAP_DAYS}


def test_a_bigger_budget_buys_clicks_at_a_worse_rate() -> None:
    spec = SAMPLE[0]
    double = demo_history.scaled(spec, Decimal(2))
    assert (double.budget, double.daily_spend) == (spec.budget * 2, spec.daily_spend * 2)
    assert double.ctr == spec.ctr * 2**-0.4
    # clicks ∝ spend × ctr: twice the money, 2^0.6 ≈ 1.52 times the clicks
    ratio = (double.daily_spend * Decimal(str(double.ctr))) / (
        spec.daily_spend * Decimal(str(spec.ctr))
    )
    assert Decimal("1.5") < ratio < Decimal("1.55")
    assert double.name == "Spring search (2x, last year)"


def test_the_half_budget_runs_targeted_no_segment() -> None:
    webinars = next(spec for spec in SAMPLE if spec.name == "Partner webinars")
    runs = {factor: demo_history.scaled(webinars, factor) for factor in demo_history.FACTORS}
    assert {factor: run.segment for factor, run in runs.items()} == {
        Decimal("0.5"): None,
        Decimal(1): "large-software",  # a rule-based segment the demo defines
        Decimal(2): "large-software",
    }
    assert SAMPLE[0].segment is None  # the broad search campaign targets everyone
