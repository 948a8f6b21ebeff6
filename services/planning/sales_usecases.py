"""Use cases of the sales-target cascade: units, targets set top-down or split over a unit's
children (evenly, by shares, or by their sales in a reference period), bottom-up proposals by a
unit's owner and the parent owner's decision, the sales kept from ``mrm.sales.v1``, and the
target tree with each unit's sales plan. Each change runs in one unit of work: state, audit
entry and events together."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace
from decimal import Decimal

from services.planning import sales, sales_plan
from services.planning import sales_store as rows
from services.planning.approvals import APPROVER_ROLES
from services.planning.sales import TargetFacts, TargetNode, UnitFacts
from services.planning.sales_plan import SalesPlan
from services.planning.store import Store, UnitOfWork
from shared.auth import Principal
from shared.errors import DomainError, Forbidden, NotFound
from shared.events.planning import (
    SalesTargetProposalDecided,
    SalesTargetProposed,
    SalesTargetSet,
    SalesUnitSet,
)
from shared.money import FxRates


def _unit(units: dict[str, UnitFacts], unit_id: str, *, field: str | None = None) -> UnitFacts:
    unit = units.get(unit_id)
    if unit is None:
        if field:
            raise DomainError(f"no sales unit {unit_id!r}", field=field, status_code=422)
        raise NotFound("sales unit", unit_id)
    return unit


def _owner_of_parent(units: dict[str, UnitFacts], unit: UnitFacts) -> str | None:
    return units[unit.parent_id].owner if unit.parent_id in units else None


def _may_direct(principal: Principal, *owners: str | None) -> None:
    if principal.role in APPROVER_ROLES or principal.subject in owners:
        return
    raise Forbidden("only cmo, admin or the owner of the unit above set this target")


def add_unit(*, db: Store, attributes: dict[str, object], principal: Principal) -> str:
    """Add a unit to the tree (cmo, admin); returns its id."""
    if principal.role not in APPROVER_ROLES:
        raise Forbidden("only cmo or admin change the sales-unit tree")
    unit = UnitFacts(unit_id=str(uuid.uuid4()), **attributes)  # type: ignore[arg-type]
    with db.unit_of_work() as uow:
        sales.check_unit(unit, rows.all_units(session=uow.session))
        uow.session.add(
            rows.SalesUnit(
                id=unit.unit_id,
                parent_id=unit.parent_id,
                kind=unit.kind,
                name=unit.name,
                owner=unit.owner,
                code=unit.code,
            )
        )
        uow.audit(
            entity_type="sales_unit",
            entity_id=unit.unit_id,
            plan_id=None,
            action="created",
            actor=principal,
            after=unit,
        )
        uow.publish([SalesUnitSet(**vars(unit))])
    return unit.unit_id


def _save_target(
    uow: UnitOfWork, principal: Principal, target: TargetFacts, *, action: str
) -> None:
    row = uow.session.get(rows.SalesTarget, target.target_id)
    before = None if row is None else rows.target_facts(row)
    if row is None:
        row = rows.SalesTarget(id=target.target_id, unit_id=target.unit_id, period=target.period)
        uow.session.add(row)
    row.brand = target.brand
    row.amount = target.amount
    row.currency = target.currency
    row.version = target.version
    uow.session.flush()
    start, end = sales.period_bounds(target.period)
    uow.audit(
        entity_type="sales_target",
        entity_id=target.target_id,
        plan_id=None,
        action=action,
        actor=principal,
        before=before,
        after=target,
    )
    uow.publish(
        [
            SalesTargetSet(
                target_id=target.target_id,
                unit_id=target.unit_id,
                period=target.period,
                period_start=start,
                period_end=end,
                brand=target.brand or None,
                amount=target.amount,
                currency=target.currency,
                set_by=principal.subject,
                version=target.version,
            )
        ]
    )


def _target_for(
    uow: UnitOfWork, *, unit_id: str, period: str, brand: str, amount: Decimal, currency: str
) -> TargetFacts:
    row = rows.find_target(session=uow.session, unit_id=unit_id, period=period, brand=brand)
    if row is None:
        return TargetFacts(
            target_id=str(uuid.uuid4()),
            unit_id=unit_id,
            period=period,
            brand=brand,
            amount=amount,
            currency=currency,
        )
    before = rows.target_facts(row)
    if before.currency != currency:
        raise DomainError(f"the target is in {before.currency}", field="currency", status_code=422)
    return replace(before, amount=amount, version=before.version + 1)


def set_target(
    *,
    db: Store,
    unit_id: str,
    period: str,
    brand: str | None,
    amount: Decimal,
    currency: str,
    principal: Principal,
) -> str:
    """Set (or replace) a unit's target for a period and brand (cmo, admin, or the owner of
    the unit above); returns the target's id."""
    sales.period_bounds(period)
    with db.unit_of_work() as uow:
        units = rows.all_units(session=uow.session)
        unit = _unit(units, unit_id, field="unit_id")
        _may_direct(principal, _owner_of_parent(units, unit))
        target = _target_for(
            uow, unit_id=unit_id, period=period, brand=brand or "", amount=amount, currency=currency
        )
        _save_target(uow, principal, target, action="set")
    return target.target_id


def split_target(
    *,
    db: Store,
    target_id: str,
    method: str,
    shares: dict[str, Decimal] | None,
    principal: Principal,
    fx: FxRates,
    reference_period: str | None = None,
) -> list[str]:
    """Distribute a target over its unit's children (cmo, admin or the unit's owner): evenly,
    by shares, or in proportion to their sales in ``reference_period`` (converted with ``fx``);
    each child's target for the same period and brand is set. Returns their ids."""
    reference_months = None
    if method == "reference" and reference_period is not None:
        reference_months = sales.months_of(reference_period, field="reference_period")
    with db.unit_of_work() as uow:
        row = uow.session.get(rows.SalesTarget, target_id)
        if row is None:
            raise NotFound("sales target", target_id)
        target = rows.target_facts(row)
        units = rows.all_units(session=uow.session)
        unit = units[target.unit_id]
        _may_direct(principal, unit.owner)
        children = [child for child in units.values() if child.parent_id == unit.unit_id]
        reference = None
        if reference_months is not None and children:
            assert reference_period is not None
            reference = sales.reference_sales(
                children,
                units=units.values(),
                groups=rows.sale_groups(session=uow.session, months=reference_months),
                target=target,
                reference_period=reference_period,
                fx=fx,
            )
        amounts = sales.split_target(
            target, children, method=method, shares=shares, reference=reference
        )
        ids = []
        for child_id, amount in amounts.items():
            child = _target_for(
                uow,
                unit_id=child_id,
                period=target.period,
                brand=target.brand,
                amount=amount,
                currency=target.currency,
            )
            _save_target(uow, principal, child, action=f"split_{method}")
            ids.append(child.target_id)
    return ids


def propose(
    *, db: Store, target_id: str, amount: Decimal, comment: str | None, principal: Principal
) -> str:
    """The unit's owner proposes another figure for its own target; returns the proposal id."""
    proposal_id = str(uuid.uuid4())
    with db.unit_of_work() as uow:
        row = uow.session.get(rows.SalesTarget, target_id)
        if row is None:
            raise NotFound("sales target", target_id)
        units = rows.all_units(session=uow.session)
        unit = units[row.unit_id]
        if principal.subject != unit.owner:
            raise Forbidden("only the unit's owner proposes a figure for its target")
        uow.session.add(
            rows.TargetProposal(
                id=proposal_id,
                target_id=target_id,
                amount=amount,
                comment=comment,
                proposed_by=principal.subject,
                status="open",
            )
        )
        uow.audit(
            entity_type="sales_target",
            entity_id=target_id,
            plan_id=None,
            action="proposed",
            actor=principal,
            before={"amount": str(row.amount)},
            after={"amount": str(amount), "proposal_id": proposal_id},
            reason=comment,
        )
        uow.publish(
            [
                SalesTargetProposed(
                    proposal_id=proposal_id,
                    target_id=target_id,
                    unit_id=unit.unit_id,
                    amount=amount,
                    comment=comment,
                    proposed_by=principal.subject,
                )
            ]
        )
    return proposal_id


def decide(
    *, db: Store, proposal_id: str, accept: bool, reason: str | None, principal: Principal
) -> str:
    """The parent unit's owner (or cmo, admin) accepts a proposal — the target takes its
    figure — or rejects it with a reason; returns the target's id."""
    with db.unit_of_work() as uow:
        proposal = uow.session.get(rows.TargetProposal, proposal_id)
        if proposal is None:
            raise NotFound("proposal", proposal_id)
        if proposal.status != "open":
            raise DomainError(
                f"the proposal is {proposal.status}", field="proposal_id", status_code=409
            )
        row = uow.session.get(rows.SalesTarget, proposal.target_id)
        assert row is not None
        units = rows.all_units(session=uow.session)
        unit = units[row.unit_id]
        _may_direct(principal, _owner_of_parent(units, unit))
        if not accept and not (reason and reason.strip()):
            raise DomainError("a rejection needs a reason", field="reason", status_code=422)
        proposal.status = "accepted" if accept else "rejected"
        proposal.decided_by = principal.subject
        proposal.decided_at = dt.datetime.now(dt.UTC)
        proposal.reason = reason
        uow.publish(
            [
                SalesTargetProposalDecided(
                    proposal_id=proposal_id,
                    target_id=row.id,
                    unit_id=unit.unit_id,
                    decision=proposal.status,  # type: ignore[arg-type]
                    decided_by=principal.subject,
                    reason=reason,
                )
            ]
        )
        if accept:
            before = rows.target_facts(row)
            after = replace(before, amount=Decimal(proposal.amount), version=before.version + 1)
            _save_target(uow, principal, after, action="proposal_accepted")
        else:
            uow.audit(
                entity_type="sales_target",
                entity_id=row.id,
                plan_id=None,
                action="proposal_rejected",
                actor=principal,
                reason=reason,
            )
        return row.id


def record_sales(*, db: Store, sales: list[rows.SaleRow]) -> int:
    """Add sale events to the sales totals (each once); how many were new."""
    with db.unit_of_work() as uow:
        return rows.record_sales(session=uow.session, sales=sales)


def target_tree(
    *, db: Store, period: str, brand: str | None, fx: FxRates
) -> tuple[list[TargetNode], dict[str, SalesPlan]]:
    """The unit tree with each unit's target for ``period`` (and ``brand``), and each unit's
    sales plan: last year's sales in the same period plus the uplift its campaigns plan."""
    months = sales.months_of(period)
    start, end = sales.period_bounds(period)
    with db.reading() as session:
        units = list(rows.all_units(session=session).values())
        targets = rows.targets_of(session=session, period=period, brand=brand or "")
        last_year = rows.sale_groups(session=session, months=sales_plan.year_before(months))
        uplifts = rows.uplifts_between(session=session, start=start, end=end)
    plans = sales_plan.sales_plans(
        units=units,
        targets=targets,
        last_year=last_year,
        uplifts=uplifts,
        months=months,
        brand=brand or "",
        fx=fx,
    )
    return sales.target_tree(units, targets), plans
