"""Discount limits' rules without a broker: versions, unchanged limits, roles on an approved
plan, and the limits in the state a republish sends."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from services.planning import discount_usecases, discounts, store, usecases
from services.planning.discounts import LimitFacts
from services.planning.store import Store
from shared.auth import Principal
from shared.errors import Forbidden
from shared.events.planning import DiscountLimitSet, PlanCreated
from shared.sql import make_engine

NONE = LimitFacts(scope_kind="line", scope_id="l1", plan_id="p1", currency="EUR")


def test_setting_limits_makes_a_new_version_and_an_event() -> None:
    first, events = discounts.set_limit(
        NONE, promo_fund=Decimal("1000.00"), max_discount_rate=Decimal("0.2")
    )
    assert first.version == 1
    assert events == [
        DiscountLimitSet(
            scope_kind="line",
            scope_id="l1",
            plan_id="p1",
            promo_fund=Decimal("1000.00"),
            max_discount_rate=Decimal("0.2"),
            currency="EUR",
            version=1,
        )
    ]
    again, none = discounts.set_limit(
        first, promo_fund=Decimal("1000"), max_discount_rate=Decimal("0.200")
    )
    assert (again, none) == (first, [])
    cleared, [event] = discounts.set_limit(first, promo_fund=None, max_discount_rate=None)
    assert (cleared.version, event.promo_fund, event.max_discount_rate) == (2, None, None)


@pytest.mark.parametrize("role", ["manager", "executor", "viewer"])
def test_only_cmo_or_admin_change_the_limits_of_an_approved_plan(role: str) -> None:
    discounts.check_role(plan_status="draft", role="manager")
    for allowed in ("cmo", "admin"):
        discounts.check_role(plan_status="approved", role=allowed)
    with pytest.raises(Forbidden):
        discounts.check_role(plan_status="approved", role=role)


def test_a_republish_sends_the_limits_after_their_plan(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    db = Store(make_engine(f"sqlite:///{tmp_path / 'planning.db'}"))
    db.create_schema()
    admin = Principal(subject="root", role="admin")
    plan_id = usecases.create_plan(
        db=db,
        name="FY",
        period_start=dt.date(2027, 1, 1),
        period_end=dt.date(2027, 12, 31),
        currency="EUR",
        owner="carla",
        principal=admin,
    )
    discount_usecases.set_limit(
        db=db,
        scope_kind="plan",
        scope_id=plan_id,
        promo_fund=Decimal("900.00"),
        max_discount_rate=None,
        principal=admin,
    )
    sent: list[object] = []
    monkeypatch.setattr(store.UnitOfWork, "publish", lambda self, events: sent.extend(events))
    assert usecases.republish_state(db=db) == len(sent)
    kinds = [type(event) for event in sent]
    assert kinds == [PlanCreated, DiscountLimitSet]
    assert sent[1] == DiscountLimitSet(
        scope_kind="plan",
        scope_id=plan_id,
        plan_id=plan_id,
        promo_fund=Decimal("900.00"),
        currency="EUR",
        version=1,
    )
