"""Campaign approval, free of I/O: who may move a campaign to which status, and which changes
to an approved campaign wait for a CMO or admin as a change request.

Lifecycle: draft → submitted → approved | rejected (with a reason) → active → completed |
cancelled; a submitted campaign may be withdrawn to draft, a rejected one reworked as a draft;
an approved or active one may be paused. Only a CMO or admin approves or rejects.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal

from shared.errors import DomainError, Forbidden

APPROVER_ROLES = frozenset({"admin", "cmo"})
TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"submitted", "approved", "cancelled"}),
    "submitted": frozenset({"draft", "approved", "rejected", "cancelled"}),
    "rejected": frozenset({"draft", "cancelled"}),
    "approved": frozenset({"active", "paused", "cancelled"}),
    "active": frozenset({"paused", "completed", "cancelled"}),
    "paused": frozenset({"active", "completed", "cancelled"}),
    "completed": frozenset(),
    "cancelled": frozenset(),
}
DECISIONS = frozenset({"approved", "rejected"})
"""Statuses only a CMO or admin sets."""
GATED_FIELDS = ("budget", "line_id", "start_date", "end_date")
"""What of an approved campaign changes only through a change request. Its sales unit,
planned uplift and target segment are not among them: they move no money."""
UNDER_APPROVAL = frozenset({"approved", "active", "paused"})
"""Statuses whose approved values stand until a change request is accepted."""


def check_transition(before: str, after: str, *, role: str, reason: str | None) -> None:
    """May ``role`` move a campaign from ``before`` to ``after``? A rejection needs a reason."""
    if after not in TRANSITIONS.get(before, frozenset()):
        raise DomainError(
            f"a {before} campaign cannot become {after}", field="status", status_code=409
        )
    if after in DECISIONS and role not in APPROVER_ROLES:
        raise Forbidden(f"only cmo or admin set a campaign {after}")
    if after == "rejected" and not (reason and reason.strip()):
        raise DomainError("a rejection needs a reason", field="reason", status_code=422)


def split_changes(
    status: str, changes: Mapping[str, object], *, role: str
) -> tuple[dict[str, object], dict[str, object]]:
    """Changes applied at once, and those that wait as a change request: the budget, line or
    dates of a campaign under approval, changed by someone who is not a CMO or admin."""
    if status not in UNDER_APPROVAL or role in APPROVER_ROLES:
        return dict(changes), {}
    direct = {key: value for key, value in changes.items() if key not in GATED_FIELDS}
    requested = {key: value for key, value in changes.items() if key in GATED_FIELDS}
    return direct, requested


def as_text(changes: Mapping[str, object]) -> dict[str, str | None]:
    """Requested values as text (how a change request stores and announces them)."""
    return {key: None if value is None else str(value) for key, value in changes.items()}


def from_text(changes: Mapping[str, str | None]) -> dict[str, object]:
    """A change request's values back in their types."""
    parsed: dict[str, object] = {}
    for key, value in changes.items():
        if value is None or key == "line_id":
            parsed[key] = value
        elif key == "budget":
            parsed[key] = Decimal(value)
        else:
            parsed[key] = dt.date.fromisoformat(value)
    return parsed
