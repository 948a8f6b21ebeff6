"""Planning's tables of the sales-target cascade: units, targets and bottom-up proposals, the
sales planning keeps from ``mrm.sales.v1`` (summed per month and attribution, each event once),
with the queries the use cases need. They belong to planning's metadata (``store.Base``)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import (
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    insert,
    select,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from services.planning.budget import month_of
from services.planning.sales import TargetFacts, UnitFacts
from services.planning.sales_plan import Uplift
from services.planning.store import Base, Campaign
from shared.sales_attribution import SaleGroup
from shared.sql import Cents, UtcDateTime, existing_ids, utcnow


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


class SaleEvent(Base):
    """A ``sale.completed`` event already added to the sales totals (its id unique: the
    event's processed record, written in the same transaction as the addition)."""

    __tablename__ = "planning_sale_events"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)


class SalesTotal(Base):
    """Sales summed per month, rep, partner, region, brand and currency ('' = none): what the
    baselines and reference splits need, however many orders there are. ``key`` is a digest of
    the other six (an index over their full widths would be too wide for PostgreSQL)."""

    __tablename__ = "planning_sales_totals"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), index=True)
    rep_id: Mapped[str] = mapped_column(String(128))
    partner_id: Mapped[str] = mapped_column(String(128))
    region: Mapped[str] = mapped_column(String(200))
    brand: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal] = mapped_column(Cents())


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


@dataclass(frozen=True)
class SaleRow:
    """A sale as planning keeps it: when, how much, and what it is attributed by."""

    event_id: uuid.UUID
    occurred_at: dt.datetime
    amount: Decimal
    currency: str
    rep_id: str | None = None
    partner_id: str | None = None
    region: str | None = None
    brand: str | None = None


def record_sales(*, session: Session, sales: Sequence[SaleRow]) -> int:
    """Add the sales not added yet to the totals (repeats within ``sales`` count once), with
    their event ids; how many were new. Totals are added to in the database (an upsert), so
    replicas adding to one total at once lose nothing."""
    seen = existing_ids(session, SaleEvent.event_id, {str(sale.event_id) for sale in sales})
    fresh: dict[str, SaleRow] = {}
    for sale in sales:
        event_id = str(sale.event_id)
        if event_id not in seen:
            fresh.setdefault(event_id, sale)
    if not fresh:
        return 0
    totals: dict[str, dict[str, object]] = {}
    for sale in fresh.values():
        fields = {
            "month": month_of(sale.occurred_at.astimezone(dt.UTC)),
            "rep_id": sale.rep_id or "",
            "partner_id": sale.partner_id or "",
            "region": sale.region or "",
            "brand": sale.brand or "",
            "currency": sale.currency,
        }
        key = hashlib.sha256(json.dumps(list(fields.values())).encode()).hexdigest()
        total = totals.setdefault(key, {"key": key, **fields, "amount": Decimal(0)})
        total["amount"] += sale.amount  # type: ignore[operator]
    session.execute(insert(SaleEvent), [{"event_id": key} for key in sorted(fresh)])
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    upsert = dialect.insert(SalesTotal)
    session.execute(
        upsert.on_conflict_do_update(
            index_elements=[SalesTotal.key],
            set_={"amount": SalesTotal.amount + upsert.excluded.amount},
        ),
        [totals[key] for key in sorted(totals)],  # one order: concurrent batches never deadlock
    )
    return len(fresh)


def sale_groups(*, session: Session, months: Sequence[str]) -> list[SaleGroup]:
    """The sales of ``months`` summed per rep, partner, region, brand and currency."""
    total = type_coerce(func.sum(SalesTotal.amount), Cents())
    columns = (
        SalesTotal.rep_id,
        SalesTotal.partner_id,
        SalesTotal.region,
        SalesTotal.brand,
        SalesTotal.currency,
    )
    rows = session.execute(
        select(*columns, total).where(SalesTotal.month.in_(list(months))).group_by(*columns)
    )
    return [
        SaleGroup(rep_id=r, partner_id=p, region=g, brand=b, currency=c, amount=a)
        for r, p, g, b, c, a in rows
    ]


def uplifts_between(*, session: Session, start: dt.date, end: dt.date) -> list[Uplift]:
    """The planned uplifts of campaigns running on any day of ``start``..``end``."""
    rows = session.scalars(
        select(Campaign).where(
            Campaign.sales_unit_id.is_not(None),
            Campaign.planned_uplift.is_not(None),
            Campaign.start_date <= end,
            Campaign.end_date >= start,
        )
    )
    return [
        Uplift(
            campaign_id=row.id,
            unit_id=row.sales_unit_id,  # type: ignore[arg-type]
            amount=Decimal(row.planned_uplift),  # type: ignore[arg-type]
            currency=row.currency,
            start_date=row.start_date,
            end_date=row.end_date,
            status=row.status,
            brand=row.brand,
        )
        for row in rows
    ]
