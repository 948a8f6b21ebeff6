"""Which sales count for which unit of the sales-target tree — one rule for planning (sales
plans, splits by past sales) and measurement (progress against targets), pure, no I/O.

A sale counts for the rep unit whose ``code`` is its ``rep_id``, the partner unit whose code is
its ``partner_id``, the region or division whose code is its ``region`` — and for every unit
above those. A node's sales are the sales attributed to it or to any unit beneath it, each sale
once (a sale of a rep and a partner of the same region counts once for the region); a company
unit holds all sales. Both services keep sales summed per (rep, partner, region, brand,
currency) — a :class:`SaleGroup` — so the roll-up walks groups, never single sales.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

CODE_FIELD = {"rep": "rep_id", "partner": "partner_id", "region": "region", "division": "region"}
"""Which field of a sale names a unit of each kind (a company has no code: it holds all)."""


class SalesUnit(Protocol):
    """What attribution needs of a unit: its id, kind, parent and code."""

    @property
    def unit_id(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def parent_id(self) -> str | None: ...

    @property
    def code(self) -> str | None: ...


@dataclass(frozen=True)
class SaleGroup:
    """The sum of the sales sharing a rep, partner, region, brand and currency ('' = none)."""

    amount: Decimal
    currency: str
    rep_id: str = ""
    partner_id: str = ""
    region: str = ""
    brand: str = ""


def of_brand(groups: Iterable[SaleGroup], brand: str | None) -> list[SaleGroup]:
    """The groups of one brand (``None`` or '': every brand)."""
    return [group for group in groups if not brand or group.brand == brand]


def roll_up(
    units: Iterable[SalesUnit], groups: Iterable[SaleGroup]
) -> dict[str, dict[str, Decimal]]:
    """unit_id → {currency → sales}: each unit's own attributed sales plus those of every unit
    beneath it, each sale group once; company units hold every group."""
    units = list(units)
    parent = {unit.unit_id: unit.parent_id for unit in units}
    by_code: dict[tuple[str, str], list[str]] = defaultdict(list)
    for unit in units:
        if unit.code and unit.kind in CODE_FIELD:
            by_code[(CODE_FIELD[unit.kind], unit.code)].append(unit.unit_id)
    companies = [unit.unit_id for unit in units if unit.kind == "company"]
    totals: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for group in groups:
        counted = set(companies)
        for name in ("rep_id", "partner_id", "region"):
            code = getattr(group, name)
            for unit_id in by_code.get((name, code), ()) if code else ():
                counted.update(with_ancestors(unit_id, parent))
        for unit_id in counted:
            totals[unit_id][group.currency] += group.amount
    return {unit_id: dict(amounts) for unit_id, amounts in totals.items()}


def with_ancestors(unit_id: str, parent: Mapping[str, str | None]) -> list[str]:
    """The unit and every unit above it (``parent``: unit_id → its parent's id)."""
    chain: list[str] = []
    current: str | None = unit_id
    while current is not None and current not in chain:  # a cycle would stop, not loop
        chain.append(current)
        current = parent.get(current)
    return chain
