"""The execution domain: thresholds, forecasts, currency, stage statuses and deadlines."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal

import pytest

from services.execution import domain
from services.execution.domain import (
    BudgetPosition,
    NotAllowed,
    StageSnapshot,
)
from shared.clock import SystemClock
from shared.events.execution import (
    BudgetOverspendForecast,
    BudgetThresholdCrossed,
    StageCompleted,
    StageDeadlineApproaching,
    StageOverdue,
)
from shared.money import CurrencyNotConvertible, FxRates

NOW = dt.datetime(2027, 3, 10, 12, 0, tzinfo=dt.UTC)
FX = FxRates(base="USD", rates={"EUR": Decimal("1.10"), "GBP": Decimal("1.25")})


def position(spend: str, budget: str = "1000", **changes: object) -> BudgetPosition:
    values: dict[str, object] = {
        "campaign_id": "c-1",
        "budget": Decimal(budget),
        "currency": "USD",
        "spend": Decimal(spend),
        "start_date": None,
        "end_date": None,
        "crossed": frozenset(),
        "crossings": {},
        "overspend_flagged": False,
        "overspend_alerts": 0,
    }
    values.update(changes)
    return BudgetPosition(**values)  # type: ignore[arg-type]


def thresholds(decision: domain.BudgetDecision) -> list[int]:
    return [
        event.data.threshold_pct
        for event in decision.events
        if isinstance(event.data, BudgetThresholdCrossed)
    ]


# --- thresholds -----------------------------------------------------------------------------


def test_below_80_percent_announces_nothing() -> None:
    decision = domain.evaluate_budget(position=position("799.99"), now=NOW)
    assert decision.events == ()
    assert decision.newly_crossed == ()


def test_80_then_100_are_announced_once_each() -> None:
    first = domain.evaluate_budget(position=position("800"), now=NOW)
    assert thresholds(first) == [80]
    event = first.events[0].data
    assert isinstance(event, BudgetThresholdCrossed)
    assert (event.spend, event.budget, event.currency) == (Decimal("800"), Decimal(1000), "USD")

    again = domain.evaluate_budget(
        position=position("950", crossed=frozenset({80}), crossings={80: 1}), now=NOW
    )
    assert again.events == ()

    full = domain.evaluate_budget(
        position=position("1000", crossed=frozenset({80}), crossings={80: 1}), now=NOW
    )
    assert thresholds(full) == [100]

    after = domain.evaluate_budget(
        position=position("1500", crossed=frozenset({80, 100}), crossings={80: 1, 100: 1}),
        now=NOW,
    )
    assert after.events == ()


def test_a_jump_past_both_announces_80_then_100() -> None:
    decision = domain.evaluate_budget(position=position("1200"), now=NOW)
    assert thresholds(decision) == [80, 100]
    assert decision.newly_crossed == (80, 100)


def test_event_ids_are_deterministic_and_distinct_per_arming() -> None:
    a = domain.evaluate_budget(position=position("900"), now=NOW)
    b = domain.evaluate_budget(position=position("900"), now=NOW)
    assert a.events[0].event_id == b.events[0].event_id
    rearmed = domain.evaluate_budget(
        position=position("900", crossings={80: 1}), now=NOW
    )  # crossed once, re-armed, crossed again
    assert rearmed.events[0].event_id != a.events[0].event_id


def test_a_raised_budget_rearms_the_thresholds_spend_fell_below() -> None:
    decision = domain.evaluate_budget(
        position=position(
            "1000", budget="1200", crossed=frozenset({80, 100}), crossings={80: 1, 100: 1}
        ),
        now=NOW,
    )
    assert decision.rearmed == (100,)
    assert decision.events == ()


def test_zero_budget_any_spend_crosses_and_no_spend_crosses_nothing() -> None:
    assert domain.evaluate_budget(position=position("0", budget="0"), now=NOW).events == ()
    assert thresholds(domain.evaluate_budget(position=position("1", budget="0"), now=NOW)) == [
        80,
        100,
    ]


# --- forecast -------------------------------------------------------------------------------


def test_forecast_is_spend_over_elapsed_share() -> None:
    # a 10-day campaign, 2.5 days elapsed → a quarter of its duration
    now = dt.datetime(2027, 1, 3, 12, 0, tzinfo=dt.UTC)
    start, end = dt.date(2027, 1, 1), dt.date(2027, 1, 10)
    assert domain.elapsed_share(start_date=start, end_date=end, now=now) == Decimal("0.25")
    assert domain.forecast_at_completion(
        spend=Decimal("100"), start_date=start, end_date=end, now=now
    ) == Decimal("400.00")
    assert domain.burn_rate_per_day(
        spend=Decimal("100"), start_date=start, end_date=end, now=now
    ) == Decimal("40.00")


def test_forecast_is_null_before_the_start_and_spend_after_the_end() -> None:
    start, end = dt.date(2027, 1, 1), dt.date(2027, 1, 10)
    before = dt.datetime(2026, 12, 31, tzinfo=dt.UTC)
    after = dt.datetime(2027, 2, 1, tzinfo=dt.UTC)
    assert (
        domain.forecast_at_completion(spend=Decimal(5), start_date=start, end_date=end, now=before)
        is None
    )
    assert (
        domain.burn_rate_per_day(spend=Decimal(5), start_date=start, end_date=end, now=before)
        is None
    )
    assert domain.forecast_at_completion(
        spend=Decimal(5), start_date=start, end_date=end, now=after
    ) == Decimal("5.00")


def test_utilisation_is_null_for_a_zero_budget() -> None:
    assert domain.utilisation(spend=Decimal(5), budget=Decimal(0)) is None
    assert domain.utilisation(spend=Decimal(250), budget=Decimal(1000)) == Decimal("0.2500")


def test_overspend_forecast_once_until_it_no_longer_holds() -> None:
    dates = {"start_date": dt.date(2027, 1, 1), "end_date": dt.date(2027, 1, 10)}
    now = dt.datetime(2027, 1, 3, 12, 0, tzinfo=dt.UTC)  # a quarter elapsed
    first = domain.evaluate_budget(position=position("300", **dates), now=now)  # 1200 > 1000
    overspend = [e.data for e in first.events if isinstance(e.data, BudgetOverspendForecast)]
    assert len(overspend) == 1
    assert overspend[0].forecast_at_completion == Decimal("1200.00")
    assert first.overspend_flagged and first.overspend_alerts == 1

    flagged = {"overspend_flagged": True, "overspend_alerts": 1}
    repeat = domain.evaluate_budget(position=position("310", **dates, **flagged), now=now)
    assert repeat.events == () and repeat.overspend_flagged

    later = dt.datetime(2027, 1, 8, tzinfo=dt.UTC)  # 70 % elapsed → forecast 442.86
    recovered = domain.evaluate_budget(position=position("310", **dates, **flagged), now=later)
    assert recovered.events == () and not recovered.overspend_flagged
    assert recovered.overspend_alerts == 1


# --- currency -------------------------------------------------------------------------------


def test_same_currency_needs_no_rate() -> None:
    rates = FxRates(base="USD", rates={})
    assert rates.convert(Decimal("10"), source="JPY", target="JPY") == Decimal("10")
    domain.check_spend_currency(currency="JPY", campaign_currency="JPY", fx=rates)


def test_conversion_goes_through_the_base_currency() -> None:
    assert FX.convert(Decimal("100"), source="EUR", target="USD") == Decimal("110.00")
    assert domain.to_money(FX.convert(Decimal("100"), source="EUR", target="GBP")) == Decimal(
        "88.00"
    )
    assert domain.to_money(FX.convert(Decimal("125"), source="USD", target="GBP")) == Decimal(
        "100.00"
    )


def test_a_currency_without_a_rate_is_rejected_naming_it() -> None:
    with pytest.raises(CurrencyNotConvertible, match="JPY"):
        domain.check_spend_currency(currency="JPY", campaign_currency="USD", fx=FX)
    with pytest.raises(CurrencyNotConvertible, match="JPY"):
        domain.check_spend_currency(currency="JPY", campaign_currency=None, fx=FX)
    domain.check_spend_currency(currency="EUR", campaign_currency=None, fx=FX)


def test_total_spend_sets_aside_what_cannot_be_converted() -> None:
    total = domain.total_spend(
        by_currency={"USD": Decimal("10"), "EUR": Decimal("100"), "JPY": Decimal("5")},
        currency="USD",
        fx=FX,
    )
    assert total.total == Decimal("120.00")
    assert total.unconverted == {"JPY": Decimal("5")}


# --- stages ---------------------------------------------------------------------------------


def stage(**changes: object) -> StageSnapshot:
    values: dict[str, object] = {
        "stage_id": "s-1",
        "campaign_id": "c-1",
        "name": "Launch",
        "deadline": NOW + dt.timedelta(hours=100),
        "assignee": "ann",
        "status": "planned",
        "status_as_of": None,
        "completed_at": None,
        "completion_announced": False,
        "warned_for": None,
        "overdue_for": None,
    }
    values.update(changes)
    return StageSnapshot(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("role", "subject", "allowed"),
    [
        ("admin", "zed", True),
        ("cmo", "zed", True),
        ("manager", "zed", True),
        ("executor", "ann", True),
        ("executor", "bob", False),
        ("viewer", "ann", False),
    ],
)
def test_who_may_change_a_stage(role: str, subject: str, allowed: bool) -> None:
    assert domain.may_change_stage(role=role, subject=subject, assignee="ann") is allowed
    if allowed:
        domain.ensure_may_change_stage(role=role, subject=subject, stage=stage())
    else:
        with pytest.raises(NotAllowed):
            domain.ensure_may_change_stage(role=role, subject=subject, stage=stage())


def test_an_executor_may_not_change_an_unassigned_stage() -> None:
    assert not domain.may_change_stage(role="executor", subject="ann", assignee=None)


def test_done_completes_the_stage_once() -> None:
    done = domain.change_stage_status(stage=stage(), status="done", at=NOW)
    assert done.applies and done.completed_at == NOW and done.completion_announced
    (event,) = done.events
    assert isinstance(event.data, StageCompleted)
    assert event.data.completed_at == NOW

    reopened = domain.change_stage_status(
        stage=stage(status="done", status_as_of=NOW, completed_at=NOW, completion_announced=True),
        status="in_progress",
        at=NOW + dt.timedelta(hours=1),
    )
    assert reopened.applies and reopened.completed_at is None and reopened.events == ()
    done_again = domain.change_stage_status(
        stage=stage(status="in_progress", status_as_of=NOW, completion_announced=True),
        status="done",
        at=NOW + dt.timedelta(hours=2),
    )
    assert done_again.applies and done_again.events == ()


def test_an_older_status_does_not_override_a_newer_one() -> None:
    decision = domain.change_stage_status(
        stage=stage(status="blocked", status_as_of=NOW),
        status="in_progress",
        at=NOW - dt.timedelta(minutes=1),
    )
    assert not decision.applies and decision.events == ()


def test_an_unscheduled_stage_is_completed_once_it_is_scheduled() -> None:
    unscheduled = stage(name=None, deadline=None)
    decision = domain.change_stage_status(stage=unscheduled, status="done", at=NOW)
    assert decision.applies and decision.events == () and not decision.completion_announced
    scheduled = stage(status="done", status_as_of=NOW, completed_at=NOW)
    assert domain.completion_event(scheduled) is not None


def check(snapshot: StageSnapshot, now: dt.datetime, **kwargs: object) -> domain.DeadlineDecision:
    return domain.check_deadline(
        stage=snapshot,
        campaign_status=kwargs.get("campaign_status", "active"),  # type: ignore[arg-type]
        now=now,
        window=dt.timedelta(hours=48),
    )


def test_deadline_outside_the_window_is_left_alone(fake_clock) -> None:  # type: ignore[no-untyped-def]
    assert (
        check(stage(deadline=fake_clock.now() + dt.timedelta(hours=49)), fake_clock.now()).events
        == ()
    )


def test_deadline_within_the_window_is_announced_once_per_deadline(fake_clock) -> None:  # type: ignore[no-untyped-def]
    deadline = fake_clock.now() + dt.timedelta(hours=49)
    fake_clock.advance(dt.timedelta(hours=2))
    first = check(stage(deadline=deadline), fake_clock.now())
    (event,) = first.events
    assert isinstance(event.data, StageDeadlineApproaching)
    assert event.data.hours_left == 47.0
    assert first.warned_for == deadline

    fake_clock.advance(dt.timedelta(hours=1))
    assert check(stage(deadline=deadline, warned_for=deadline), fake_clock.now()).events == ()

    rescheduled = deadline + dt.timedelta(hours=1)
    again = check(stage(deadline=rescheduled, warned_for=deadline), fake_clock.now())
    assert len(again.events) == 1 and again.events[0].event_id != event.event_id


def test_a_passed_deadline_is_flagged_overdue_once(fake_clock) -> None:  # type: ignore[no-untyped-def]
    deadline = fake_clock.now() + dt.timedelta(hours=1)
    fake_clock.advance(dt.timedelta(hours=1))  # exactly at the deadline
    first = check(stage(deadline=deadline, warned_for=deadline), fake_clock.now())
    (event,) = first.events
    assert isinstance(event.data, StageOverdue)
    assert first.overdue_for == deadline and first.warned_for == deadline
    fake_clock.advance(dt.timedelta(days=3))
    assert (
        check(
            stage(deadline=deadline, warned_for=deadline, overdue_for=deadline), fake_clock.now()
        ).events
        == ()
    )


def test_a_stage_first_seen_overdue_is_only_flagged_overdue(fake_clock) -> None:  # type: ignore[no-untyped-def]
    decision = check(stage(deadline=fake_clock.now() - dt.timedelta(days=1)), fake_clock.now())
    assert [type(e.data) for e in decision.events] == [StageOverdue]


@pytest.mark.parametrize(
    ("status", "campaign_status"),
    [
        ("done", "active"),
        ("cancelled", "active"),
        ("in_progress", "cancelled"),
        ("planned", "completed"),
    ],
)
def test_closed_stages_and_finished_campaigns_get_no_reminders(
    fake_clock,
    status: str,
    campaign_status: str,  # type: ignore[no-untyped-def]
) -> None:
    overdue = stage(status=status, deadline=fake_clock.now() - dt.timedelta(hours=1))
    assert check(overdue, fake_clock.now(), campaign_status=campaign_status).events == ()


def test_clock_contract_fake_and_system_tell_aware_utc_time(fake_clock) -> None:  # type: ignore[no-untyped-def]
    for clock in (fake_clock, SystemClock()):
        now = clock.now()
        assert now.tzinfo is not None and now.utcoffset() == dt.timedelta(0)


def test_a_forecast_seconds_into_a_campaign_still_fits_an_event() -> None:
    start = dt.date(2027, 1, 1)
    now = dt.datetime(2027, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC)
    decision = domain.evaluate_budget(
        position=position(
            "9999999999999.00", budget="1", start_date=start, end_date=dt.date(2027, 12, 31)
        ),
        now=now,
    )
    (overspend,) = [e.data for e in decision.events if isinstance(e.data, BudgetOverspendForecast)]
    assert overspend.forecast_at_completion == domain.MONEY_MAX


# --- spend of a batch, evaluated at once ------------------------------------------------------


def one_by_one(start: BudgetPosition, totals: list[Decimal], now: dt.datetime) -> list:
    """``evaluate_budget`` after each total, carrying what each decision records."""
    p, events, crossings = start, [], []
    for total in totals:
        d = domain.evaluate_budget(position=replace(p, spend=total), now=now)
        events += d.events
        crossings += [(pct, total) for pct in d.newly_crossed]
        counts = dict(p.crossings)
        for pct in d.newly_crossed:
            counts[pct] = counts.get(pct, 0) + 1
        p = replace(
            p,
            crossed=(p.crossed | set(d.newly_crossed)) - set(d.rearmed),
            crossings=counts,
            overspend_flagged=d.overspend_flagged,
            overspend_alerts=d.overspend_alerts,
        )
    return [events, crossings, p.overspend_flagged, p.overspend_alerts]


@pytest.mark.parametrize(
    ("start", "totals"),
    [
        # crosses 80 % then 100 % on later events; the forecast goes over the budget on the way
        (
            position("0", start_date=dt.date(2027, 3, 1), end_date=dt.date(2027, 3, 31)),
            ["100", "250", "799.99", "800", "950", "1000", "1200"],
        ),
        # both at once, then nothing new
        (position("0"), ["1200", "1300"]),
        # 80 % crossed before a raised budget: re-armed by the first event, announced again later
        (
            position("0", budget="2000", crossed=frozenset({80}), crossings={80: 1}),
            ["900", "1500", "1700"],
        ),
        # flagged earlier, the forecast is back under the budget, then over it again: a new alert
        (
            position(
                "0",
                start_date=dt.date(2027, 3, 1),
                end_date=dt.date(2027, 3, 31),
                overspend_flagged=True,
                overspend_alerts=1,
            ),
            ["100", "200", "400"],
        ),
    ],
)
def test_a_run_of_spend_decides_what_one_event_at_a_time_decides(
    start: BudgetPosition, totals: list[str]
) -> None:
    amounts = [Decimal(t) for t in totals]
    batch = domain.evaluate_spend(position=start, totals=amounts, now=NOW)
    expected = one_by_one(start, amounts, NOW)
    assert [
        list(batch.events),
        [(c.threshold_pct, c.spend) for c in batch.crossings],
        batch.overspend_flagged,
        batch.overspend_alerts,
    ] == expected
    assert expected[0], "every case announces something"


def test_running_totals_are_total_spend_after_each_event() -> None:
    before = {"USD": Decimal("10.00"), "EUR": Decimal("3.33"), "JPY": Decimal("500")}
    spends = [
        ("EUR", Decimal("0.01")),
        ("USD", Decimal("5")),
        ("GBP", Decimal("7.77")),
        ("JPY", Decimal("1")),
    ]
    running = domain.running_totals(by_currency=before, spends=spends, currency="EUR", fx=FX)
    sums, expected = dict(before), []
    for currency, amount in spends:
        sums[currency] = sums.get(currency, Decimal(0)) + amount
        expected.append(domain.total_spend(by_currency=sums, currency="EUR", fx=FX).total)
    assert running == expected
