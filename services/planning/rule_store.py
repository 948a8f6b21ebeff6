"""Planning's table of reallocation rules (one row per rule of a plan) and its queries. It
belongs to planning's metadata (``store.Base``)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Boolean, Integer, Numeric, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from services.planning.rules import RuleFacts
from services.planning.store import Base
from shared.sql import UtcDateTime, utcnow


class ReallocationRule(Base):
    """One reallocation rule of a plan."""

    __tablename__ = "planning_reallocation_rules"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    plan_id: Mapped[str] = mapped_column(String(64), index=True)
    kpi: Mapped[str] = mapped_column(String(64))
    comparison: Mapped[str] = mapped_column(String(2))
    threshold: Mapped[Decimal] = mapped_column(Numeric(28, 10))
    min_spend_share: Mapped[Decimal] = mapped_column(Numeric(7, 6))
    hold_s: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    share: Mapped[Decimal] = mapped_column(Numeric(7, 6))
    # added after the first rules: nullable, so an existing table gains them (adoption of a
    # database made before migrations, shared.migrations)
    hysteresis: Mapped[Decimal | None] = mapped_column(Numeric(28, 10), nullable=True)
    recipient_threshold: Mapped[Decimal | None] = mapped_column(Numeric(28, 10), nullable=True)
    min_amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2), nullable=True)
    scope_line_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mode: Mapped[str] = mapped_column(String(8))
    enabled: Mapped[bool] = mapped_column(Boolean)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


def _facts(row: ReallocationRule) -> RuleFacts:
    return RuleFacts(
        rule_id=row.id,
        plan_id=row.plan_id,
        kpi=row.kpi,
        comparison=row.comparison,  # type: ignore[arg-type]
        threshold=Decimal(row.threshold),
        min_spend_share=Decimal(row.min_spend_share),
        hold_s=row.hold_s,
        action=row.action,  # type: ignore[arg-type]
        target_id=row.target_id,
        share=Decimal(row.share),
        hysteresis=Decimal(0) if row.hysteresis is None else Decimal(row.hysteresis),
        recipient_threshold=(
            None if row.recipient_threshold is None else Decimal(row.recipient_threshold)
        ),
        min_amount=Decimal("0.00") if row.min_amount is None else Decimal(row.min_amount),
        scope_line_id=row.scope_line_id,
        mode=row.mode,  # type: ignore[arg-type]
        enabled=row.enabled,
        is_default=row.is_default,
        version=row.version,
    )


def get_rule(*, session: Session, rule_id: str) -> RuleFacts | None:
    """The rule with ``rule_id``, or None."""
    row = session.get(ReallocationRule, rule_id)
    return None if row is None else _facts(row)


def save_rule(*, session: Session, facts: RuleFacts) -> None:
    """Insert or update a rule."""
    row = session.get(ReallocationRule, facts.rule_id)
    if row is None:
        row = ReallocationRule(id=facts.rule_id, plan_id=facts.plan_id)
        session.add(row)
    for name in (
        "kpi",
        "comparison",
        "threshold",
        "min_spend_share",
        "hold_s",
        "action",
        "target_id",
        "share",
        "hysteresis",
        "recipient_threshold",
        "min_amount",
        "scope_line_id",
        "mode",
        "enabled",
        "is_default",
        "version",
    ):
        setattr(row, name, getattr(facts, name))
    session.flush()


def delete_rule(*, session: Session, rule_id: str) -> None:
    """Remove a rule."""
    row = session.get(ReallocationRule, rule_id)
    if row is not None:
        session.delete(row)
        session.flush()


def rules_of(*, session: Session, plan_id: str) -> list[RuleFacts]:
    """A plan's rules, oldest first."""
    rows = session.scalars(
        select(ReallocationRule)
        .where(ReallocationRule.plan_id == plan_id)
        .order_by(ReallocationRule.created_at, ReallocationRule.id)
    )
    return [_facts(row) for row in rows]
