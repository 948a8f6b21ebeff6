"""Sales targets, free of I/O: the tree of sales units (company → region or division → sales rep
or trade partner), target periods, the top-down split of a target over a unit's children (even,
by given shares, or by their sales in a reference period), and the roll-up that shows each
node's own target against the sum of its children's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from shared.budget import months_between, split
from shared.errors import DomainError
from shared.money import FxRates, in_currency
from shared.periods import period_bounds as period_bounds  # re-exported: planning reads it here
from shared.sales_attribution import SaleGroup, of_brand, roll_up

LEVEL = {"company": 0, "region": 1, "division": 1, "rep": 2, "partner": 2}
"""How deep each kind of unit sits: a unit's parent is of a shallower level."""
SHARE_PLACES = Decimal("0.000001")


@dataclass(frozen=True)
class UnitFacts:
    """A sales unit: its kind, parent, owner (who proposes its figures) and ``code``, the id
    sales events carry for it (a partner_id, rep_id or region)."""

    unit_id: str
    name: str
    kind: str
    owner: str
    parent_id: str | None = None
    code: str | None = None


@dataclass(frozen=True)
class TargetFacts:
    """A unit's sales target for a period (``YYYY-MM`` or ``YYYY-Qn``) and brand ('' = all)."""

    target_id: str
    unit_id: str
    period: str
    brand: str
    amount: Decimal
    currency: str
    version: int = 1


def check_unit(unit: UnitFacts, units: Mapping[str, UnitFacts]) -> None:
    """A unit's kind fits under its parent: the company at the top, regions and divisions under
    it, reps and partners beneath those; codes are unique among units of one kind."""
    if unit.parent_id is None:
        if unit.kind != "company":
            raise DomainError(
                f"a {unit.kind} needs a parent unit", field="parent_id", status_code=422
            )
    else:
        parent = units.get(unit.parent_id)
        if parent is None:
            raise DomainError(
                f"no sales unit {unit.parent_id!r}", field="parent_id", status_code=422
            )
        if LEVEL[unit.kind] <= LEVEL[parent.kind]:
            raise DomainError(
                f"a {unit.kind} cannot sit under a {parent.kind}", field="kind", status_code=422
            )
    if unit.code is not None:
        for other in units.values():
            if (
                other.unit_id != unit.unit_id
                and other.kind == unit.kind
                and other.code == unit.code
            ):
                raise DomainError(
                    f"{unit.kind} {other.name!r} has the code {unit.code!r} already",
                    field="code",
                    status_code=409,
                )


def months_of(period: str, *, field: str = "period") -> list[str]:
    """The ``YYYY-MM`` months of a month or quarter period (a 422 naming ``field`` if it is
    not one)."""
    try:
        start, end = period_bounds(period)
    except DomainError as error:
        raise DomainError(error.message, field=field, status_code=422) from None
    return months_between(start, end)


def reference_sales(
    children: Sequence[UnitFacts],
    *,
    units: Iterable[UnitFacts],
    groups: Iterable[SaleGroup],
    target: TargetFacts,
    reference_period: str,
    fx: FxRates,
) -> dict[str, Decimal]:
    """Each child's attributed sales in the reference period (``groups``), of the target's
    brand only if it has one, in the target's currency. A child's sales in a currency without
    a rate, or no sales of any child, leave nothing to split by: a 422 naming
    ``reference_period``."""
    attributed = roll_up(units, of_brand(groups, target.brand))
    sold: dict[str, Decimal] = {}
    for child in children:
        amount, unconverted = in_currency(
            attributed.get(child.unit_id, {}), currency=target.currency, fx=fx
        )
        if unconverted:
            raise DomainError(
                f"sales in {', '.join(sorted(unconverted))} of {reference_period} cannot be"
                f" converted to {target.currency}: no FX rate is configured",
                field="reference_period",
                status_code=422,
            )
        sold[child.unit_id] = amount
    if not any(sold.values()):
        raise DomainError(
            f"the sub-units sold nothing in {reference_period}"
            + (f" of brand {target.brand!r}" if target.brand else "")
            + ": there are no shares to split by",
            field="reference_period",
            status_code=422,
        )
    return sold


def split_target(
    target: TargetFacts,
    children: Sequence[UnitFacts],
    *,
    method: str,
    shares: Mapping[str, Decimal] | None,
    reference: Mapping[str, Decimal] | None = None,
) -> dict[str, Decimal]:
    """The amounts of a target's children: even, by given shares (adding up to 1), or in
    proportion to ``reference`` (each child's sales in a reference period); the cents rounding
    leaves over go to the first children, so they add up to the target."""
    if not children:
        raise DomainError(
            "the unit has no sub-units to split over", field="unit_id", status_code=422
        )
    ids = [child.unit_id for child in children]
    weights: Mapping[str, int | Decimal]
    if method == "even":
        weights = dict.fromkeys(ids, 1)
    elif method == "reference":
        if reference is None:
            raise DomainError(
                "a reference_period is needed to split by past sales",
                field="reference_period",
                status_code=422,
            )
        weights = {unit_id: reference.get(unit_id, Decimal(0)) for unit_id in ids}
    elif method == "shares":
        if not shares:
            raise DomainError(
                "shares are needed to split by shares", field="shares", status_code=422
            )
        unknown = sorted(set(shares) - set(ids))
        if unknown:
            raise DomainError(
                f"not sub-units of this unit: {', '.join(unknown)}", field="shares", status_code=422
            )
        total = sum(shares.values(), Decimal(0))
        if total != 1:
            raise DomainError(
                f"the shares add up to {total}, not 1", field="shares", status_code=422
            )
        weights = {unit_id: int(shares.get(unit_id, 0) / SHARE_PLACES) for unit_id in ids}
    else:
        raise DomainError(f"unknown method {method!r}", field="method", status_code=422)
    return split(target.amount, weights)


@dataclass
class TargetNode:
    """A unit in the target tree: its own target (None = not set), the sum of its children's
    targets and the gap between them (own − children; None without both)."""

    unit: UnitFacts
    target: TargetFacts | None
    children_sum: Decimal | None
    children: list[TargetNode] = field(default_factory=list)

    @property
    def gap(self) -> Decimal | None:
        """How much the children's targets fall short of this unit's own (negative: over)."""
        if self.target is None or self.children_sum is None:
            return None
        return self.target.amount - self.children_sum


def target_tree(units: Iterable[UnitFacts], targets: Iterable[TargetFacts]) -> list[TargetNode]:
    """The units as trees (roots first) with the targets of one period and brand."""
    units = list(units)
    by_unit = {target.unit_id: target for target in targets}

    def node(unit: UnitFacts) -> TargetNode:
        children = [node(child) for child in units if child.parent_id == unit.unit_id]
        set_children = [child.target.amount for child in children if child.target is not None]
        return TargetNode(
            unit=unit,
            target=by_unit.get(unit.unit_id),
            children_sum=sum(set_children, Decimal("0.00")) if set_children else None,
            children=children,
        )

    return [node(unit) for unit in units if unit.parent_id is None]
