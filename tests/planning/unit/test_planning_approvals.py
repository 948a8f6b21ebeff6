"""The campaign lifecycle and change requests without I/O: who may move a campaign where,
and which changes wait for a CMO or admin."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from services.planning import approvals
from shared.errors import DomainError, Forbidden


@pytest.mark.parametrize(
    ("before", "after", "role"),
    [
        ("draft", "submitted", "manager"),
        ("submitted", "draft", "manager"),
        ("submitted", "approved", "cmo"),
        ("draft", "approved", "admin"),
        ("rejected", "draft", "manager"),
        ("approved", "active", "manager"),
        ("active", "completed", "manager"),
    ],
)
def test_allowed_moves(before: str, after: str, role: str) -> None:
    approvals.check_transition(before, after, role=role, reason=None)


def test_only_approvers_decide_and_a_rejection_needs_a_reason() -> None:
    for status in ("approved", "rejected"):
        with pytest.raises(Forbidden):
            approvals.check_transition("submitted", status, role="manager", reason="x")
    for reason in (None, "  "):
        with pytest.raises(DomainError) as caught:
            approvals.check_transition("submitted", "rejected", role="cmo", reason=reason)
        assert caught.value.field == "reason"
    approvals.check_transition("submitted", "rejected", role="cmo", reason="no")


@pytest.mark.parametrize(
    ("before", "after"),
    [("draft", "active"), ("rejected", "approved"), ("approved", "draft"), ("completed", "active")],
)
def test_moves_outside_the_lifecycle_are_conflicts(before: str, after: str) -> None:
    with pytest.raises(DomainError) as caught:
        approvals.check_transition(before, after, role="admin", reason="r")
    assert (caught.value.field, caught.value.status_code) == ("status", 409)


def test_money_and_dates_of_an_approved_campaign_wait_unless_a_cmo_changes_them() -> None:
    changes = {"name": "N", "budget": Decimal("5"), "end_date": dt.date(2027, 5, 1)}
    direct, requested = approvals.split_changes("active", changes, role="manager")
    assert direct == {"name": "N"}
    assert requested == {"budget": Decimal("5"), "end_date": dt.date(2027, 5, 1)}
    assert approvals.split_changes("active", changes, role="cmo") == (changes, {})
    assert approvals.split_changes("draft", changes, role="manager") == (changes, {})
    text = approvals.as_text({**requested, "line_id": None})
    assert text == {"budget": "5", "end_date": "2027-05-01", "line_id": None}
    assert approvals.from_text(text) == {**requested, "line_id": None}
