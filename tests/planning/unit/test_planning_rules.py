"""Reallocation rules in planning's domain: checks naming the field, versions, events, roles,
the default rule from the settings, and a republish that includes the rules."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal

import pytest

from services.planning import rule_usecases, rules, store, usecases
from services.planning.rules import RuleDraft
from services.planning.settings import PlanningSettings
from services.planning.store import Store
from shared.auth import Principal
from shared.errors import DomainError, Forbidden
from shared.events.planning import ReallocationRuleRemoved, ReallocationRuleSet
from shared.reallocation import holds
from shared.sql import make_engine

DRAFT = RuleDraft(
    kpi="cpl",
    comparison="gt",
    threshold=Decimal("40"),
    action="campaign",
    target_id="c-2",
    share=Decimal("0.25"),
    min_spend_share=Decimal("0.3"),
    hold_s=3600,
    mode="apply",
)


def test_a_rule_is_created_with_version_1_and_published() -> None:
    facts, [event] = rules.create_rule(DRAFT, rule_id="r-1", plan_id="p-1")
    assert (facts.version, facts.share, facts.is_default) == (1, Decimal("0.250000"), False)
    assert isinstance(event, ReallocationRuleSet)
    assert event.model_dump() == {
        "rule_id": "r-1",
        "plan_id": "p-1",
        "kpi": "cpl",
        "comparison": "gt",
        "threshold": Decimal("40"),
        "min_spend_share": Decimal("0.300000"),
        "hold_s": 3600,
        "hysteresis": Decimal(0),
        "action": "campaign",
        "target_id": "c-2",
        "recipient_threshold": None,
        "share": Decimal("0.250000"),
        "min_amount": Decimal("0.00"),
        "mode": "apply",
        "enabled": True,
        "scope_line_id": None,
        "is_default": False,
        "version": 1,
    }


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"kpi": "mood"}, "kpi"),
        ({"share": Decimal(0)}, "share"),
        ({"target_id": None}, "target_id"),
        ({"action": "best_in_line", "target_id": "c-2"}, "target_id"),
        ({"action": "line", "target_id": None}, "target_id"),
        ({"recipient_threshold": Decimal(40)}, "recipient_threshold"),
    ],
)
def test_a_rule_that_cannot_work_is_refused_naming_the_field(
    changes: dict[str, object], field: str
) -> None:
    with pytest.raises(DomainError) as refused:
        rules.check(replace(DRAFT, **changes))  # type: ignore[arg-type]
    assert (refused.value.field, refused.value.status_code) == (field, 422)


def test_a_change_makes_a_new_version_and_an_unchanged_rule_none() -> None:
    facts, _ = rules.create_rule(DRAFT, rule_id="r-1", plan_id="p-1")
    same, none = rules.update_rule(facts, changes={"threshold": Decimal("40.00")})
    assert (same, none) == (facts, [])
    moved, [event] = rules.update_rule(facts, changes={"action": "best_in_line"})
    assert (moved.version, moved.target_id, event.action, event.version) == (
        2,
        None,
        "best_in_line",
        2,
    )
    assert rules.remove_rule(moved) == [ReallocationRuleRemoved(rule_id="r-1", plan_id="p-1")]
    scored, _ = rules.update_rule(moved, changes={"recipient_threshold": Decimal(20)})
    named, _ = rules.update_rule(scored, changes={"action": "campaign", "target_id": "c-3"})
    assert (scored.recipient_threshold, named.recipient_threshold) == (Decimal(20), None)


@pytest.mark.parametrize("role", ["manager", "executor", "viewer"])
def test_only_cmo_or_admin_change_rules(role: str) -> None:
    for allowed in ("cmo", "admin"):
        rules.check_role(role=allowed)
    with pytest.raises(Forbidden):
        rules.check_role(role=role)


def test_the_comparisons() -> None:
    value, threshold = Decimal("79.99"), Decimal(80)
    assert [
        holds(value=value, comparison=c, threshold=threshold) for c in ("lt", "le", "gt", "ge")
    ] == [
        True,
        True,
        False,
        False,
    ]
    assert holds(value=threshold, comparison="le", threshold=threshold)
    assert not holds(value=threshold, comparison="lt", threshold=threshold)


def test_the_default_rule_mirrors_the_measurement_rule_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert PlanningSettings().default_rule() == RuleDraft(
        kpi="ckpi",
        comparison="lt",
        threshold=Decimal(80),
        min_spend_share=Decimal("0.1"),
        action="best_in_line",
        share=Decimal("0.2"),
        hysteresis=Decimal(5),
        recipient_threshold=Decimal(110),
        min_amount=Decimal(1),
    )
    monkeypatch.setenv("MRM_MEASUREMENT_REALLOCATION_UNDER_CKPI", "70")
    monkeypatch.setenv("MRM_MEASUREMENT_REALLOCATION_SHARE", "0.15")
    monkeypatch.setenv("MRM_MEASUREMENT_REALLOCATION_ENABLED", "false")
    rule = PlanningSettings().default_rule()
    assert (rule.threshold, rule.share, rule.enabled) == (Decimal(70), Decimal("0.15"), False)


def test_a_plan_gets_its_default_rule_and_a_republish_sends_the_rules(
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
        default_rule=PlanningSettings().default_rule(),
    )
    [default] = rule_usecases.list_rules(db=db, plan_id=plan_id)
    assert (default.kpi, default.threshold, default.is_default) == ("ckpi", Decimal(80), True)
    sent: list[object] = []
    monkeypatch.setattr(store.UnitOfWork, "publish", lambda self, events: sent.extend(events))
    assert usecases.republish_state(db=db) == len(sent)
    [event] = [e for e in sent if isinstance(e, ReallocationRuleSet)]
    assert (event.rule_id, event.is_default) == (default.rule_id, True)
    assert sent.index(event) > 0  # after its plan
