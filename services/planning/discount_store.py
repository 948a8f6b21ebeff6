"""Planning's table of discount limits (one row per plan, budget line or campaign that has
them) and its queries. It belongs to planning's metadata (``store.Base``)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Integer, Numeric, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from services.planning.discounts import LimitFacts, ScopeKind
from services.planning.store import Base
from shared.sql import UtcDateTime, utcnow


class DiscountLimit(Base):
    """The promo fund and maximum discount rate of one scope."""

    __tablename__ = "planning_discount_limits"
    __table_args__ = (
        UniqueConstraint("scope_kind", "scope_id", name="uq_planning_discount_limit"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope_kind: Mapped[str] = mapped_column(String(10))
    scope_id: Mapped[str] = mapped_column(String(64))
    plan_id: Mapped[str] = mapped_column(String(64), index=True)
    promo_fund: Mapped[Decimal | None] = mapped_column(Numeric(18, 2), nullable=True)
    max_discount_rate: Mapped[Decimal | None] = mapped_column(Numeric(7, 6), nullable=True)
    currency: Mapped[str] = mapped_column(String(3))
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


def _facts(row: DiscountLimit) -> LimitFacts:
    return LimitFacts(
        scope_kind=row.scope_kind,  # type: ignore[arg-type]
        scope_id=row.scope_id,
        plan_id=row.plan_id,
        currency=row.currency,
        promo_fund=None if row.promo_fund is None else Decimal(row.promo_fund),
        max_discount_rate=(
            None if row.max_discount_rate is None else Decimal(row.max_discount_rate)
        ),
        version=row.version,
    )


def _row(*, session: Session, scope_kind: ScopeKind, scope_id: str) -> DiscountLimit | None:
    return session.scalars(
        select(DiscountLimit).where(
            DiscountLimit.scope_kind == scope_kind, DiscountLimit.scope_id == scope_id
        )
    ).first()


def get_limit(
    *, session: Session, scope_kind: ScopeKind, scope_id: str, plan_id: str, currency: str
) -> LimitFacts:
    """A scope's limits (version 0, no fund and no rate, where none were ever set)."""
    row = _row(session=session, scope_kind=scope_kind, scope_id=scope_id)
    if row is None:
        return LimitFacts(
            scope_kind=scope_kind, scope_id=scope_id, plan_id=plan_id, currency=currency
        )
    return _facts(row)


def save_limit(*, session: Session, facts: LimitFacts) -> None:
    """Insert or update a scope's limits."""
    row = _row(session=session, scope_kind=facts.scope_kind, scope_id=facts.scope_id)
    if row is None:
        row = DiscountLimit(scope_kind=facts.scope_kind, scope_id=facts.scope_id)
        session.add(row)
    row.plan_id = facts.plan_id
    row.promo_fund = facts.promo_fund
    row.max_discount_rate = facts.max_discount_rate
    row.currency = facts.currency
    row.version = facts.version
    row.updated_at = utcnow()
    session.flush()


def limits_of(*, session: Session, plan_id: str) -> list[LimitFacts]:
    """Every limit set on a plan or its lines and campaigns."""
    rows = session.scalars(
        select(DiscountLimit).where(DiscountLimit.plan_id == plan_id).order_by(DiscountLimit.id)
    )
    return [_facts(row) for row in rows]
