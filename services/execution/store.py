"""Execution's relational store: its projection of plans, campaigns and stages, spend, alerts.

SQLAlchemy models plus the unit of work and small keyword-only query functions. Money is kept
as integer cents (exact on SQLite and PostgreSQL alike) and times as timezone-aware UTC.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Engine,
    Integer,
    MetaData,
    String,
    Text,
    func,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.execution.domain import CLOSED_STAGE_STATUSES, Outgoing
from shared.events import new_envelope
from shared.sql import (
    Cents,
    UtcDateTime,
    add_to_outbox,
    claim_event,
    create_tables,
    define_messaging_tables,
    utcnow,
)

SOURCE = "execution"
CONSUMER = "execution"
"""The inbox consumer name of every handler (each event_id is applied once)."""


class Base(DeclarativeBase):
    """Declarative base with the execution service's own metadata."""

    metadata = MetaData()


MESSAGING = define_messaging_tables(Base.metadata, prefix="execution")


class Plan(Base):
    """A plan as far as execution needs it (its currency)."""

    __tablename__ = "execution_plans"

    plan_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    period_start: Mapped[dt.date] = mapped_column(Date)
    period_end: Mapped[dt.date] = mapped_column(Date)


class Campaign(Base):
    """Execution's projection of a campaign; ``version`` 0 means only a placeholder so far.

    A placeholder exists when spend, a budget or a status arrived before the campaign itself.
    """

    __tablename__ = "execution_campaigns"

    campaign_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    plan_id: Mapped[str | None] = mapped_column(String(128), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    channel: Mapped[str | None] = mapped_column(String(64))
    owner: Mapped[str | None] = mapped_column(String(128))
    start_date: Mapped[dt.date | None] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str | None] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer, default=0)
    status_version: Mapped[int] = mapped_column(Integer, default=0)
    budget: Mapped[Decimal | None] = mapped_column(Cents)
    currency: Mapped[str | None] = mapped_column(String(3))
    budget_as_of: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    overspend_flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    overspend_alerts: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class ThresholdCrossing(Base):
    """A budget threshold announced for a campaign; ``rearmed_at`` set once it recovered."""

    __tablename__ = "execution_threshold_crossings"

    campaign_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    threshold_pct: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    crossed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    spend: Mapped[Decimal] = mapped_column(Cents)
    budget: Mapped[Decimal] = mapped_column(Cents)
    rearmed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class Spend(Base):
    """One ``spend.recorded`` event, in its own currency."""

    __tablename__ = "execution_spend"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    campaign_id: Mapped[str] = mapped_column(String(128), index=True)
    channel: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(Cents)
    currency: Mapped[str] = mapped_column(String(3))
    occurred_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class Stage(Base):
    """A campaign stage: its schedule (from planning) and its status (owned here).

    ``version`` 0 means the status arrived before the stage was scheduled.
    """

    __tablename__ = "execution_stages"

    stage_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(128), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    deadline: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, index=True)
    starts_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    assignee: Mapped[str | None] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20), default="planned")
    status_as_of: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    status_by: Mapped[str | None] = mapped_column(String(128))
    status_comment: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    completion_announced: Mapped[bool] = mapped_column(Boolean, default=False)
    warned_for: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    overdue_for: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


def create_schema(*, engine: Engine) -> None:
    """Create the service's tables that do not exist yet."""
    create_tables(engine, Base.metadata)


@contextmanager
def unit_of_work(*, engine: Engine) -> Iterator[Session]:
    """One transaction: committed when the block ends normally, rolled back on an error."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


def claim(*, session: Session, event_id: uuid.UUID) -> bool:
    """Record an incoming event as processed; False if it already was."""
    return claim_event(session, MESSAGING, consumer=CONSUMER, event_id=event_id)


def emit(*, session: Session, events: Iterable[Outgoing], occurred_at: dt.datetime) -> int:
    """Queue events in the outbox (same transaction); ids already queued are skipped."""
    queued = 0
    for outgoing in events:
        envelope = new_envelope(
            outgoing.data, source=SOURCE, event_id=outgoing.event_id, occurred_at=occurred_at
        )
        if add_to_outbox(
            session,
            MESSAGING,
            envelope=envelope,
            topic=outgoing.data.topic,
            key=outgoing.data.key(),
            skip_existing=True,
        ):
            queued += 1
    return queued


def upsert_plan(
    *,
    session: Session,
    plan_id: str,
    name: str,
    currency: str,
    period_start: dt.date,
    period_end: dt.date,
) -> Plan:
    """Insert or overwrite a plan."""
    plan = session.get(Plan, plan_id) or Plan(plan_id=plan_id)
    plan.name, plan.currency = name, currency
    plan.period_start, plan.period_end = period_start, period_end
    session.add(plan)
    return plan


def plan_currency(*, session: Session, plan_id: str | None) -> str | None:
    """The currency of a known plan."""
    plan = session.get(Plan, plan_id) if plan_id else None
    return plan.currency if plan else None


def lock_campaign(*, session: Session, campaign_id: str) -> Campaign:
    """The campaign row, locked for this transaction; a placeholder is created if missing.

    Locking serialises concurrent spend and planning updates of one campaign, so a threshold
    is evaluated against every committed spend and budget.
    """
    campaign = session.get(Campaign, campaign_id, with_for_update=True)
    if campaign is None:
        campaign = Campaign(
            campaign_id=campaign_id,
            version=0,
            status_version=0,
            overspend_flagged=False,
            overspend_alerts=0,
            updated_at=utcnow(),
        )
        session.add(campaign)
        session.flush()
    return campaign


def get_campaign(*, session: Session, campaign_id: str) -> Campaign | None:
    """A campaign known from planning (placeholders do not count)."""
    campaign = session.get(Campaign, campaign_id)
    return campaign if campaign is not None and campaign.version > 0 else None


def list_campaigns(
    *, session: Session, plan_id: str | None, status: str | None, limit: int, offset: int
) -> list[Campaign]:
    """Campaigns known from planning, optionally of one plan and status, by name."""
    query = select(Campaign).where(Campaign.version > 0)
    if plan_id is not None:
        query = query.where(Campaign.plan_id == plan_id)
    if status is not None:
        query = query.where(Campaign.status == status)
    query = query.order_by(Campaign.name, Campaign.campaign_id).limit(limit).offset(offset)
    return list(session.scalars(query))


def campaigns_to_watch(*, session: Session) -> list[str]:
    """Ids of campaigns with a budget, dates and an unfinished status (forecast changes daily)."""
    query = select(Campaign.campaign_id).where(
        Campaign.version > 0,
        Campaign.budget.is_not(None),
        Campaign.status.not_in(("completed", "cancelled")),
    )
    return list(session.scalars(query))


def add_spend(
    *,
    session: Session,
    event_id: uuid.UUID,
    campaign_id: str,
    channel: str,
    amount: Decimal,
    currency: str,
    occurred_at: dt.datetime,
) -> None:
    """Record one spend event."""
    session.add(
        Spend(
            event_id=str(event_id),
            campaign_id=campaign_id,
            channel=channel,
            amount=amount,
            currency=currency,
            occurred_at=occurred_at,
        )
    )
    session.flush()


def spend_by_currency(*, session: Session, campaign_id: str) -> dict[str, Decimal]:
    """A campaign's recorded spend summed per currency."""
    rows = session.execute(
        select(Spend.currency, func.sum(Spend.amount))
        .where(Spend.campaign_id == campaign_id)
        .group_by(Spend.currency)
    ).all()
    return {currency: total for currency, total in rows}


def crossings(*, session: Session, campaign_id: str) -> tuple[frozenset[int], dict[int, int]]:
    """The thresholds currently crossed, and how often each was announced."""
    rows = session.scalars(
        select(ThresholdCrossing).where(ThresholdCrossing.campaign_id == campaign_id)
    ).all()
    crossed = frozenset(row.threshold_pct for row in rows if row.rearmed_at is None)
    counts: dict[int, int] = {}
    for row in rows:
        counts[row.threshold_pct] = max(counts.get(row.threshold_pct, 0), row.generation)
    return crossed, counts


def record_crossings(
    *,
    session: Session,
    campaign_id: str,
    newly_crossed: Iterable[int],
    rearmed: Iterable[int],
    counts: dict[int, int],
    spend: Decimal,
    budget: Decimal,
    at: dt.datetime,
) -> None:
    """Record newly announced thresholds and re-arm the recovered ones."""
    for pct in newly_crossed:
        session.add(
            ThresholdCrossing(
                campaign_id=campaign_id,
                threshold_pct=pct,
                generation=counts.get(pct, 0) + 1,
                crossed_at=at,
                spend=spend,
                budget=budget,
            )
        )
    for pct in rearmed:
        for row in session.scalars(
            select(ThresholdCrossing).where(
                ThresholdCrossing.campaign_id == campaign_id,
                ThresholdCrossing.threshold_pct == pct,
                ThresholdCrossing.rearmed_at.is_(None),
            )
        ):
            row.rearmed_at = at
    session.flush()


def lock_stage(*, session: Session, stage_id: str) -> Stage | None:
    """The stage row locked for this transaction, or None."""
    return session.get(Stage, stage_id, with_for_update=True)


def new_stage(*, session: Session, stage_id: str, campaign_id: str) -> Stage:
    """Add an empty stage row (filled by the caller)."""
    stage = Stage(
        stage_id=stage_id,
        campaign_id=campaign_id,
        version=0,
        status="planned",
        completion_announced=False,
        updated_at=utcnow(),
    )
    session.add(stage)
    return stage


def get_stage(*, session: Session, stage_id: str) -> Stage | None:
    """A stage known from planning (unscheduled placeholders do not count)."""
    stage = session.get(Stage, stage_id)
    return stage if stage is not None and stage.version > 0 else None


def stages_of(*, session: Session, campaign_id: str) -> list[Stage]:
    """A campaign's scheduled stages by deadline."""
    query = (
        select(Stage)
        .where(Stage.campaign_id == campaign_id, Stage.version > 0)
        .order_by(Stage.deadline, Stage.stage_id)
    )
    return list(session.scalars(query))


def open_stages_due(*, session: Session, before: dt.datetime) -> list[Stage]:
    """Scheduled, open stages whose deadline is before ``before``, locked (skipping locked)."""
    query = (
        select(Stage)
        .where(
            Stage.version > 0,
            Stage.deadline <= before,
            Stage.status.not_in(tuple(CLOSED_STAGE_STATUSES)),
        )
        .order_by(Stage.deadline)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query))


def campaign_statuses(*, session: Session, campaign_ids: Iterable[str]) -> dict[str, str | None]:
    """The status of each given campaign that is known."""
    ids = list(set(campaign_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(Campaign.campaign_id, Campaign.status).where(Campaign.campaign_id.in_(ids))
    ).all()
    return {campaign_id: status for campaign_id, status in rows}
