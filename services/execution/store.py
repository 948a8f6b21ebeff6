"""Execution's relational store: its projection of plans, campaigns and stages, spend, alerts.

SQLAlchemy models plus the unit of work and small keyword-only query functions. Money is kept
as integer cents (exact on SQLite and PostgreSQL alike) and times as timezone-aware UTC.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    Date,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.execution.domain import CLOSED_STAGE_STATUSES, Crossing, Outgoing
from shared.events import new_envelope
from shared.migrations import migrate
from shared.sql import (
    Cents,
    UtcDateTime,
    add_to_outbox,
    claim_event,
    create_missing_tables,
    define_messaging_tables,
    utcnow,
)

SOURCE = "execution"
CONSUMER = "execution"
"""The inbox consumer name of every handler (each event_id is applied once)."""
_IDS_PER_QUERY = 500
"""Ids per ``IN (...)`` list: far below every backend's bound-parameter limit."""


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


_SPEND_TABLE = cast(Table, Spend.__table__)


class SpendTotal(Base):
    """A campaign's recorded spend in one currency: the sum of its ``Spend`` rows, kept with
    them in the same transaction so a budget check reads one row, not the whole history."""

    __tablename__ = "execution_spend_totals"

    campaign_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    amount: Mapped[Decimal] = mapped_column(Cents)


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
    """Migrate the service's database to the head revision (``mrm migrate execution``; tests
    and ``mrm up`` call it before the service starts)."""
    from services.execution.migrations import migration_set

    migrate(engine, migration_set())


def adopt_legacy_schema(connection: Connection) -> None:
    """Bring a database made before migrations to the baseline revision, as the service's
    start did then: missing tables and nullable columns added, and spend totals filled from
    the spend recorded before their table existed."""
    create_missing_tables(connection, Base.metadata, then=_fill_spend_totals)


def _fill_spend_totals(connection: Connection, created: frozenset[str]) -> None:
    if SpendTotal.__tablename__ not in created:
        return
    connection.execute(
        insert(SpendTotal).from_select(
            ["campaign_id", "currency", "amount"],
            select(Spend.campaign_id, Spend.currency, func.sum(Spend.amount)).group_by(
                Spend.campaign_id, Spend.currency
            ),
        )
    )


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
    return lock_campaigns(session=session, campaign_ids=[campaign_id])[campaign_id]


def lock_campaigns(*, session: Session, campaign_ids: Iterable[str]) -> dict[str, Campaign]:
    """The campaign rows, locked for this transaction in id order (placeholders created for
    the missing ones): ``lock_campaign`` for many in one query."""
    ids = sorted(set(campaign_ids))
    found: dict[str, Campaign] = {}
    for start in range(0, len(ids), _IDS_PER_QUERY):
        query = (
            select(Campaign)
            .where(Campaign.campaign_id.in_(ids[start : start + _IDS_PER_QUERY]))
            .order_by(Campaign.campaign_id)
            .with_for_update()
        )
        found.update((campaign.campaign_id, campaign) for campaign in session.scalars(query))
    missing = [campaign_id for campaign_id in ids if campaign_id not in found]
    for campaign_id in missing:
        found[campaign_id] = Campaign(
            campaign_id=campaign_id,
            version=0,
            status_version=0,
            overspend_flagged=False,
            overspend_alerts=0,
            updated_at=utcnow(),
        )
        session.add(found[campaign_id])
    if missing:
        session.flush()
    return found


def plan_currencies(*, session: Session, plan_ids: Iterable[str | None]) -> dict[str, str]:
    """The currency of each given plan that is known."""
    ids = sorted({plan_id for plan_id in plan_ids if plan_id})
    if not ids:
        return {}
    rows = session.execute(select(Plan.plan_id, Plan.currency).where(Plan.plan_id.in_(ids)))
    return {plan_id: currency for plan_id, currency in rows}


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


@dataclass(frozen=True, slots=True)
class SpendRow:
    """One ``spend.recorded`` to record."""

    event_id: uuid.UUID
    campaign_id: str
    channel: str
    amount: Decimal
    currency: str
    occurred_at: dt.datetime


def spends_recorded(*, session: Session, event_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these spend events are recorded already (a spend row is its event's processed
    record: its event_id is unique, and it is written in the transaction that applies it)."""
    wanted = sorted({str(event_id) for event_id in event_ids})
    seen: set[uuid.UUID] = set()
    for start in range(0, len(wanted), _IDS_PER_QUERY):
        rows = session.scalars(
            select(Spend.event_id).where(Spend.event_id.in_(wanted[start : start + _IDS_PER_QUERY]))
        )
        seen.update(uuid.UUID(event_id) for event_id in rows)
    return seen


def add_spends(
    *,
    session: Session,
    spends: Sequence[SpendRow],
    totals: Mapping[str, Mapping[str, Decimal]],
) -> None:
    """Record spend events (distinct, none recorded yet) and add them to their campaigns'
    ``totals`` (as ``spend_totals`` read them in this transaction), one statement per table."""
    if not spends:
        return
    session.execute(
        insert(_SPEND_TABLE),  # Core: the ORM's bulk insert costs more than the insert itself
        [
            {
                "event_id": str(row.event_id),
                "campaign_id": row.campaign_id,
                "channel": row.channel,
                "amount": row.amount,
                "currency": row.currency,
                "occurred_at": row.occurred_at,
            }
            for row in spends
        ],
    )
    added: dict[tuple[str, str], Decimal] = {}
    for row in spends:
        key = (row.campaign_id, row.currency)
        added[key] = added.get(key, Decimal(0)) + row.amount
    updates: list[dict[str, object]] = []
    inserts: list[dict[str, object]] = []
    for (campaign_id, currency), amount in added.items():
        current = totals.get(campaign_id, {}).get(currency)
        total = {
            "campaign_id": campaign_id,
            "currency": currency,
            "amount": (current or 0) + amount,
        }
        (inserts if current is None else updates).append(total)
    if updates:
        session.execute(update(SpendTotal), updates)  # by primary key, one executemany
    if inserts:
        session.execute(insert(SpendTotal), inserts)


def spend_totals(*, session: Session, campaign_ids: Iterable[str]) -> dict[str, dict[str, Decimal]]:
    """Campaign → currency → recorded spend, for the given campaigns."""
    ids = sorted(set(campaign_ids))
    out: dict[str, dict[str, Decimal]] = {}
    for start in range(0, len(ids), _IDS_PER_QUERY):
        rows = session.execute(
            select(SpendTotal.campaign_id, SpendTotal.currency, SpendTotal.amount).where(
                SpendTotal.campaign_id.in_(ids[start : start + _IDS_PER_QUERY])
            )
        )
        for campaign_id, currency, amount in rows:
            out.setdefault(campaign_id, {})[currency] = amount
    return out


def spend_by_currency(*, session: Session, campaign_id: str) -> dict[str, Decimal]:
    """A campaign's recorded spend summed per currency."""
    return spend_totals(session=session, campaign_ids=[campaign_id]).get(campaign_id, {})


def crossings(*, session: Session, campaign_id: str) -> tuple[frozenset[int], dict[int, int]]:
    """The thresholds currently crossed, and how often each was announced."""
    return crossings_of(session=session, campaign_ids=[campaign_id])[campaign_id]


def crossings_of(
    *, session: Session, campaign_ids: Iterable[str]
) -> dict[str, tuple[frozenset[int], dict[int, int]]]:
    """``crossings`` of each given campaign, in one query per 500 campaigns."""
    ids = sorted(set(campaign_ids))
    open_: dict[str, set[int]] = {campaign_id: set() for campaign_id in ids}
    counts: dict[str, dict[int, int]] = {campaign_id: {} for campaign_id in ids}
    for start in range(0, len(ids), _IDS_PER_QUERY):
        rows = session.execute(
            select(
                ThresholdCrossing.campaign_id,
                ThresholdCrossing.threshold_pct,
                ThresholdCrossing.generation,
                ThresholdCrossing.rearmed_at,
            ).where(ThresholdCrossing.campaign_id.in_(ids[start : start + _IDS_PER_QUERY]))
        )
        for campaign_id, pct, generation, rearmed_at in rows:
            if rearmed_at is None:
                open_[campaign_id].add(pct)
            counts[campaign_id][pct] = max(counts[campaign_id].get(pct, 0), generation)
    return {c: (frozenset(open_[c]), counts[c]) for c in ids}


def record_crossings(
    *,
    session: Session,
    campaign_id: str,
    crossings: Iterable[Crossing],
    rearmed: Iterable[int],
    budget: Decimal,
    at: dt.datetime,
) -> None:
    """Re-arm the recovered thresholds and record the newly announced ones."""
    for pct in rearmed:
        for row in session.scalars(
            select(ThresholdCrossing).where(
                ThresholdCrossing.campaign_id == campaign_id,
                ThresholdCrossing.threshold_pct == pct,
                ThresholdCrossing.rearmed_at.is_(None),
            )
        ):
            row.rearmed_at = at
    for crossing in crossings:
        session.add(
            ThresholdCrossing(
                campaign_id=campaign_id,
                threshold_pct=crossing.threshold_pct,
                generation=crossing.generation,
                crossed_at=at,
                spend=crossing.spend,
                budget=budget,
                rearmed_at=at if crossing.rearmed else None,
            )
        )
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
