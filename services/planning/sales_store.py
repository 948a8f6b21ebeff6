"""Planning's tables of the sales-target cascade: units, targets and bottom-up proposals, with
the queries the use cases need. They belong to planning's metadata (``store.Base``)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import ForeignKey, Integer, Numeric, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from services.planning.sales import TargetFacts, UnitFacts
from services.planning.store import Base
from shared.sql import UtcDateTime, utcnow


class SalesUnit(Base):
    """A unit of the sales-target tree."""

    __tablename__ = "planning_sales_units"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    parent_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(128))
    code: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class SalesTarget(Base):
    """A unit's target for one period and brand ('' = all brands)."""

    __tablename__ = "planning_sales_targets"
    __table_args__ = (
        UniqueConstraint("unit_id", "period", "brand", name="uq_planning_sales_target"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    unit_id: Mapped[str] = mapped_column(ForeignKey("planning_sales_units.id"), index=True)
    period: Mapped[str] = mapped_column(String(7))
    brand: Mapped[str] = mapped_column(String(200), default="")
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    currency: Mapped[str] = mapped_column(String(3))
    version: Mapped[int] = mapped_column(Integer, default=1)


class TargetProposal(Base):
    """A unit owner's proposed figure for its target, for the parent's owner to decide."""

    __tablename__ = "planning_sales_target_proposals"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    target_id: Mapped[str] = mapped_column(ForeignKey("planning_sales_targets.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    proposed_by: Mapped[str] = mapped_column(String(128))
    proposed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(String(20), default="open")
    decided_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


def unit_facts(row: SalesUnit) -> UnitFacts:
    """The domain view of a unit row."""
    return UnitFacts(
        unit_id=row.id,
        name=row.name,
        kind=row.kind,
        owner=row.owner,
        parent_id=row.parent_id,
        code=row.code,
    )


def target_facts(row: SalesTarget) -> TargetFacts:
    """The domain view of a target row."""
    return TargetFacts(
        target_id=row.id,
        unit_id=row.unit_id,
        period=row.period,
        brand=row.brand,
        amount=Decimal(row.amount),
        currency=row.currency,
        version=row.version,
    )


def all_units(*, session: Session) -> dict[str, UnitFacts]:
    """Every sales unit by id, in creation order."""
    rows = session.scalars(select(SalesUnit).order_by(SalesUnit.created_at, SalesUnit.id))
    return {row.id: unit_facts(row) for row in rows}


def find_target(*, session: Session, unit_id: str, period: str, brand: str) -> SalesTarget | None:
    """The target of a unit for a period and brand, or None."""
    return session.scalars(
        select(SalesTarget).where(
            SalesTarget.unit_id == unit_id,
            SalesTarget.period == period,
            SalesTarget.brand == brand,
        )
    ).first()


def targets_of(*, session: Session, period: str, brand: str) -> list[TargetFacts]:
    """Every unit's target for a period and brand."""
    rows = session.scalars(
        select(SalesTarget).where(SalesTarget.period == period, SalesTarget.brand == brand)
    )
    return [target_facts(row) for row in rows]


def proposals_of(*, session: Session, target_id: str) -> list[TargetProposal]:
    """The proposals made for a target, newest first."""
    return list(
        session.scalars(
            select(TargetProposal)
            .where(TargetProposal.target_id == target_id)
            .order_by(TargetProposal.proposed_at.desc(), TargetProposal.id)
        )
    )
