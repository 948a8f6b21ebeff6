"""The demo's sales-target cascade: a company with regions (their codes are the regions the
demo's sales carry), a trade partner and two reps; this quarter's company target split over the
regions by shares and evenly over the reps; then a rep proposes a lower figure for her own
target and her region's owner accepts it — each step through the planning API, as the people
who may take it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx

from mrm.runtime import Runtime

COMPANY_TARGET = Decimal("240000")
UNITS: tuple[tuple[str, str, str, str | None, str | None], ...] = (
    # name, kind, owner, parent name, code (the id sales carry)
    ("Acme", "company", "cmo", None, None),
    ("EMEA", "region", "manager", "Acme", "EMEA"),
    ("Americas", "region", "cmo", "Acme", "Americas"),
    ("APAC", "region", "cmo", "Acme", "APAC"),
    ("PartnerNet", "partner", "manager", "EMEA", "PartnerNet"),
    ("Eve (rep)", "rep", "executor", "EMEA", "rep-eve"),
)
SHARES = {"EMEA": "0.5", "Americas": "0.3", "APAC": "0.2"}


def quarter_of(day: dt.date) -> str:
    """The ``YYYY-Qn`` period of a day."""
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


class TargetCascade:
    """Plays the CMO, the EMEA region's owner (the manager) and a rep (the executor)."""

    def __init__(self, runtime: Runtime, *, url: Callable[[str, str], str]) -> None:
        self.url = url
        self.clients = {
            role: httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=15)
            for role in ("admin", "cmo", "manager", "executor")
            if (token := runtime.token_for(role)) is not None
        }
        self.period = quarter_of(dt.date.today())
        self.units: dict[str, str] = {}
        """unit name → id, once ``run`` has built the tree."""

    def _call(self, role: str, method: str, path: str, body: object = None) -> Any:
        client = self.clients.get(role) or self.clients["admin"]
        response = client.request(method, self.url("planning", path), json=body)
        if response.status_code >= 400:
            raise SystemExit(f"{method} {path} failed ({response.status_code}): {response.text}")
        return response.json()

    def run(self) -> list[str]:
        """Build the cascade; returns what happened, a line each."""
        ids = self.units
        for name, kind, owner, parent, code in UNITS:
            body = {"name": name, "kind": kind, "owner": owner, "parent_id": ids.get(parent or "")}
            ids[name] = self._call("cmo", "POST", "/api/v1/sales-units", {**body, "code": code})[
                "unit_id"
            ]
        top = self._call(
            "cmo",
            "POST",
            "/api/v1/sales-targets",
            {"unit_id": ids["Acme"], "period": self.period, "amount": str(COMPANY_TARGET)},
        )
        regions = self._call(
            "cmo",
            "POST",
            f"/api/v1/sales-targets/{top['target_id']}/split",
            {"method": "shares", "shares": {ids[name]: share for name, share in SHARES.items()}},
        )
        emea = next(t for t in regions if t["unit_id"] == ids["EMEA"])
        under_emea = self._call(
            "manager",
            "POST",
            f"/api/v1/sales-targets/{emea['target_id']}/split",
            {"method": "even"},
        )
        eve = next(t for t in under_emea if t["unit_id"] == ids["Eve (rep)"])
        lower = (Decimal(eve["amount"]) * Decimal("0.8")).quantize(Decimal("1"))
        proposal = self._call(
            "executor",
            "POST",
            f"/api/v1/sales-targets/{eve['target_id']}/proposals",
            {"amount": str(lower), "comment": "a key account moves its orders to next quarter"},
        )
        self._call(
            "manager", "POST", f"/api/v1/sales-target-proposals/{proposal['proposal_id']}/accept"
        )
        return [
            f"sales target {self.period}: {COMPANY_TARGET:,.0f} for Acme, split "
            + ", ".join(f"{name} {Decimal(share):.0%}" for name, share in SHARES.items()),
            f"EMEA's {Decimal(emea['amount']):,.0f} split evenly over PartnerNet and Eve;"
            f" Eve proposed {lower:,.0f} and EMEA's owner accepted",
        ]
