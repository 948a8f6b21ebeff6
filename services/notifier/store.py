"""The notifier's relational store: directory, recipients, delivery log, parked causes, outbox.

Every function takes the caller's ``session`` (keyword-only) and never commits: the unit of
work (:class:`UnitOfWork`) decides where a transaction ends, so the inbox claim, the
notifications and the outbox rows of one message are written together or not at all.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.notifier import domain
from shared.events import Envelope, EventData, new_envelope
from shared.migrations import migrate
from shared.sql import (
    UtcDateTime,
    add_to_outbox,
    claim_event,
    create_missing_tables,
    define_messaging_tables,
)

CONSUMER = "notifier"


class Base(DeclarativeBase):
    """Declarative base of the notifier's tables."""

    metadata = MetaData()


MESSAGING = define_messaging_tables(Base.metadata, prefix="notifier")


class PlanRow(Base):
    """A plan of the directory (from ``plan.created``)."""

    __tablename__ = "notifier_plans"

    plan_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(128))
    currency: Mapped[str] = mapped_column(String(3))
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class CampaignRow(Base):
    """A campaign of the directory (from ``campaign.planned`` / ``campaign.updated``)."""

    __tablename__ = "notifier_campaigns"

    campaign_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    plan_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class StageRow(Base):
    """A stage of the directory (from ``stage.scheduled``)."""

    __tablename__ = "notifier_stages"

    stage_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(128), index=True)
    name: Mapped[str] = mapped_column(String(200))
    assignee: Mapped[str | None] = mapped_column(String(128))
    deadline: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class UnitRow(Base):
    """A unit of the sales-target tree (from ``sales_unit.set``; the latest one wins)."""

    __tablename__ = "notifier_units"

    unit_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    parent_id: Mapped[str | None] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class ChangeRequestRow(Base):
    """Who asked for a change to a campaign (from ``campaign.change_requested``)."""

    __tablename__ = "notifier_change_requests"

    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(128))
    requested_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class LineRow(Base):
    """A budget line of the directory (from ``budget_line.set``; removed with
    ``budget_line.removed``)."""

    __tablename__ = "notifier_budget_lines"

    line_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    plan_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class RecipientRow(Base):
    """A person or system that receives notifications, with channels and preferences."""

    __tablename__ = "notifier_recipients"

    recipient_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    channels: Mapped[list[str]] = mapped_column(JSON)
    muted_event_types: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class NotificationRow(Base):
    """The delivery log: one row per cause, recipient and channel."""

    __tablename__ = "notifier_notifications"
    __table_args__ = (
        UniqueConstraint(
            "cause_event_id", "recipient", "channel", name="uq_notifier_notification_cause"
        ),
        Index("ix_notifier_notifications_due", "status", "next_attempt_at"),
        Index("ix_notifier_notifications_recipient", "recipient", "created_at"),
        Index("ix_notifier_notifications_created", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    recipient: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    cause_event_id: Mapped[str] = mapped_column(String(36))
    cause_event_type: Mapped[str] = mapped_column(String(100))
    campaign_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class ParkedCauseRow(Base):
    """A cause whose stage, campaign, plan or unit is not in the directory yet (notified once
    it is)."""

    __tablename__ = "notifier_parked_causes"

    __table_args__ = (Index("ix_notifier_parked_causes_waits", "waits_kind", "waits_id"),)

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    waits_kind: Mapped[str] = mapped_column(String(16))
    waits_id: Mapped[str] = mapped_column(String(128))
    envelope: Mapped[dict[str, Any]] = mapped_column(JSON)
    parked_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


def create_schema(engine: Engine) -> None:
    """Migrate the notifier's database to the head revision (``mrm migrate notifier``; tests
    and ``mrm up`` call it before the service starts)."""
    from services.notifier.migrations import migration_set

    migrate(engine, migration_set())


def adopt_legacy_schema(connection: Connection) -> None:
    """Bring a database made before migrations to the baseline revision, as the notifier's
    start did then: missing tables and nullable columns added."""
    create_missing_tables(connection, Base.metadata)


class UnitOfWork:
    """One transaction: the session, the inbox claim and the outbox of a service operation."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.session: Session

    def __enter__(self) -> UnitOfWork:
        self.session = Session(self._engine, expire_on_commit=False)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.session.rollback()
        self.session.close()

    def claim(self, *, event_id: uuid.UUID) -> bool:
        """Record ``event_id`` as processed; False if it already was."""
        return claim_event(self.session, MESSAGING, consumer=CONSUMER, event_id=event_id)

    def publish(self, *, data: EventData, event_id: uuid.UUID) -> Envelope:
        """Queue an outgoing event in this transaction's outbox."""
        envelope = new_envelope(data, source=domain.SOURCE, event_id=event_id)
        add_to_outbox(self.session, MESSAGING, envelope=envelope, topic=data.topic, key=data.key())
        return envelope

    def commit(self) -> None:
        """Commit the transaction."""
        self.session.commit()


# --- directory --------------------------------------------------------------------------------


def upsert_plan(*, session: Session, plan: domain.PlanInfo, now: dt.datetime) -> None:
    """Insert or replace a plan of the directory."""
    session.merge(
        PlanRow(
            plan_id=plan.plan_id,
            name=plan.name,
            owner=plan.owner,
            currency=plan.currency,
            updated_at=now,
        )
    )


def upsert_campaign(*, session: Session, campaign: domain.CampaignInfo, now: dt.datetime) -> bool:
    """Insert or replace a campaign unless a newer version is stored; True if applied."""
    return _merge_versioned(
        session,
        CampaignRow(
            campaign_id=campaign.campaign_id,
            plan_id=campaign.plan_id,
            name=campaign.name,
            owner=campaign.owner,
            version=campaign.version,
            updated_at=now,
        ),
        key=campaign.campaign_id,
    )


def upsert_stage(*, session: Session, stage: domain.StageInfo, now: dt.datetime) -> bool:
    """Insert or replace a stage unless a newer version is stored; True if applied."""
    return _merge_versioned(
        session,
        StageRow(
            stage_id=stage.stage_id,
            campaign_id=stage.campaign_id,
            name=stage.name,
            assignee=stage.assignee,
            deadline=stage.deadline,
            version=stage.version,
            updated_at=now,
        ),
        key=stage.stage_id,
    )


def upsert_line(*, session: Session, line: domain.LineInfo, now: dt.datetime) -> bool:
    """Insert or replace a budget line unless a newer version is stored; True if applied."""
    return _merge_versioned(
        session,
        LineRow(
            line_id=line.line_id,
            plan_id=line.plan_id,
            name=line.name,
            version=line.version,
            updated_at=now,
        ),
        key=line.line_id,
    )


def remove_line(*, session: Session, line_id: str) -> None:
    """Forget a removed budget line."""
    # no tombstone: a line's set and removed events share the plan's key, so they arrive in
    # order, and planning never reuses a removed line's id
    session.execute(delete(LineRow).where(LineRow.line_id == line_id))


_Versioned = TypeVar("_Versioned", CampaignRow, StageRow, LineRow)


def _merge_versioned(session: Session, row: _Versioned, *, key: str) -> bool:
    """Merge ``row`` unless the stored entry ``key`` has a newer version (late events lose)."""
    current = session.get(type(row), key)
    if not domain.supersedes(incoming=row.version, current=current.version if current else None):
        return False
    session.merge(row)
    return True


def upsert_unit(*, session: Session, unit: domain.UnitInfo, now: dt.datetime) -> None:
    """Insert or replace a sales unit of the directory."""
    session.merge(
        UnitRow(
            unit_id=unit.unit_id,
            parent_id=unit.parent_id,
            kind=unit.kind,
            name=unit.name,
            owner=unit.owner,
            updated_at=now,
        )
    )


def add_change_request(
    *, session: Session, request: domain.ChangeRequestInfo, now: dt.datetime
) -> None:
    """Remember who asked for a change (to tell them the decision)."""
    session.merge(
        ChangeRequestRow(
            request_id=request.request_id,
            campaign_id=request.campaign_id,
            requested_by=request.requested_by,
            updated_at=now,
        )
    )


def load_directory(*, session: Session, lookups: domain.Lookups) -> domain.Directory:
    """The directory entries named by ``lookups`` (plus the plans of those campaigns and the
    parents of those units)."""
    campaigns = {
        row.campaign_id: domain.CampaignInfo(
            campaign_id=row.campaign_id,
            plan_id=row.plan_id,
            name=row.name,
            owner=row.owner,
            version=row.version,
        )
        for row in _rows(session, CampaignRow, CampaignRow.campaign_id, lookups.campaign_ids)
    }
    stages = {
        row.stage_id: domain.StageInfo(
            stage_id=row.stage_id,
            campaign_id=row.campaign_id,
            name=row.name,
            assignee=row.assignee,
            deadline=row.deadline,
            version=row.version,
        )
        for row in _rows(session, StageRow, StageRow.stage_id, lookups.stage_ids)
    }
    units = _units(session, lookups.unit_ids)
    related = domain.lookups_with_plans(lookups, domain.Directory(campaigns=campaigns, units=units))
    units |= _units(session, related.unit_ids - units.keys())
    plan_ids = related.plan_ids
    request_rows = _rows(
        session, ChangeRequestRow, ChangeRequestRow.request_id, lookups.request_ids
    )
    requests = {
        row.request_id: domain.ChangeRequestInfo(
            request_id=row.request_id, campaign_id=row.campaign_id, requested_by=row.requested_by
        )
        for row in request_rows
    }
    plans = {
        row.plan_id: domain.PlanInfo(
            plan_id=row.plan_id, name=row.name, owner=row.owner, currency=row.currency
        )
        for row in _rows(session, PlanRow, PlanRow.plan_id, plan_ids)
    }
    lines = {
        row.line_id: domain.LineInfo(
            line_id=row.line_id, plan_id=row.plan_id, name=row.name, version=row.version
        )
        for row in _rows(session, LineRow, LineRow.line_id, lookups.line_ids)
    }
    return domain.Directory(
        plans=plans,
        campaigns=campaigns,
        stages=stages,
        units=units,
        change_requests=requests,
        lines=lines,
    )


def _units(session: Session, unit_ids: Iterable[str]) -> dict[str, domain.UnitInfo]:
    return {
        row.unit_id: domain.UnitInfo(
            unit_id=row.unit_id,
            parent_id=row.parent_id,
            kind=row.kind,
            name=row.name,
            owner=row.owner,
        )
        for row in _rows(session, UnitRow, UnitRow.unit_id, unit_ids)
    }


def _rows(session: Session, model: Any, key: Any, ids: Iterable[str]) -> Sequence[Any]:
    wanted = sorted(ids)
    if not wanted:
        return []
    return session.scalars(select(model).where(key.in_(wanted))).all()


# --- parked causes ----------------------------------------------------------------------------


def park_cause(
    *, session: Session, envelope: Envelope, waits_for: domain.WaitKey, now: dt.datetime
) -> None:
    """Keep a cause until the campaign or plan it waits for is known."""
    if session.get(ParkedCauseRow, str(envelope.event_id)) is None:
        session.add(
            ParkedCauseRow(
                event_id=str(envelope.event_id),
                waits_kind=waits_for.kind,
                waits_id=waits_for.identifier,
                envelope=envelope.model_dump(mode="json"),
                parked_at=now,
            )
        )
        session.flush()


def take_parked(*, session: Session, waits_for: domain.WaitKey) -> list[Envelope]:
    """Remove and return the causes waiting for ``waits_for``, oldest first.

    ``DELETE … RETURNING`` hands a cause to the one transaction whose delete removed it: when
    replicas release the same key at once (a handler and another replica's sweep), the other
    gets nothing instead of notifying the cause a second time."""
    taken = session.execute(
        delete(ParkedCauseRow)
        .where(
            ParkedCauseRow.waits_kind == waits_for.kind,
            ParkedCauseRow.waits_id == waits_for.identifier,
        )
        .returning(ParkedCauseRow.parked_at, ParkedCauseRow.event_id, ParkedCauseRow.envelope)
        .execution_options(synchronize_session=False)
    ).all()
    return [Envelope.model_validate(row.envelope) for row in sorted(taken)]


@dataclass(frozen=True)
class ExpiredCause:
    """A parked cause dropped because what it waited for never came."""

    event_id: str
    waits_kind: str
    waits_id: str
    envelope: dict[str, Any]
    parked_at: dt.datetime


def expire_parked(*, session: Session, parked_before: dt.datetime) -> list[ExpiredCause]:
    """Remove and return the causes parked before ``parked_before`` (what they waited for
    never came), oldest first; each is returned by the one transaction that removed it."""
    expired = session.execute(
        delete(ParkedCauseRow)
        .where(ParkedCauseRow.parked_at < parked_before)
        .returning(
            ParkedCauseRow.event_id,
            ParkedCauseRow.waits_kind,
            ParkedCauseRow.waits_id,
            ParkedCauseRow.envelope,
            ParkedCauseRow.parked_at,
        )
        .execution_options(synchronize_session=False)
    ).all()
    causes = [ExpiredCause(**row._asdict()) for row in expired]
    return sorted(causes, key=lambda cause: (cause.parked_at, cause.event_id))


def count_parked(*, session: Session) -> int:
    """How many causes are waiting."""
    return session.scalar(select(func.count()).select_from(ParkedCauseRow)) or 0


def ready_wait_keys(*, session: Session) -> list[domain.WaitKey]:
    """Keys of parked causes whose stage, campaign, plan or unit is in the directory by now."""
    known = {
        "campaign": select(CampaignRow.campaign_id),
        "plan": select(PlanRow.plan_id),
        "stage": select(StageRow.stage_id),
        "unit": select(UnitRow.unit_id),
    }
    keys: list[domain.WaitKey] = []
    for kind, ids in known.items():
        waiting = select(ParkedCauseRow.waits_id).where(
            ParkedCauseRow.waits_kind == kind, ParkedCauseRow.waits_id.in_(ids)
        )
        keys += [
            domain.WaitKey(kind=kind, identifier=key)  # type: ignore[arg-type]
            for key in sorted(set(session.scalars(waiting)))
        ]
    return keys


# --- recipients -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecipientRecord:
    """A stored recipient."""

    prefs: domain.RecipientPrefs
    created_at: dt.datetime
    updated_at: dt.datetime


def _prefs(row: RecipientRow) -> domain.RecipientPrefs:
    return domain.RecipientPrefs(
        recipient_id=row.recipient_id,
        name=row.name,
        email=row.email,
        webhook_url=row.webhook_url,
        channels=tuple(row.channels),
        muted_event_types=frozenset(row.muted_event_types),
    )


def put_recipient(
    *, session: Session, prefs: domain.RecipientPrefs, now: dt.datetime
) -> tuple[RecipientRecord, bool]:
    """Create or replace a recipient; returns it and whether it was created."""
    row = session.get(RecipientRow, prefs.recipient_id)
    created = row is None
    if row is None:
        row = RecipientRow(recipient_id=prefs.recipient_id, created_at=now)
        session.add(row)
    row.name = prefs.name
    row.email = prefs.email
    row.webhook_url = prefs.webhook_url
    row.channels = list(prefs.channels)
    row.muted_event_types = sorted(prefs.muted_event_types)
    row.updated_at = now
    session.flush()
    return RecipientRecord(prefs=_prefs(row), created_at=row.created_at, updated_at=now), created


def get_recipient(*, session: Session, recipient_id: str) -> RecipientRecord | None:
    """A recipient by id, or None."""
    row = session.get(RecipientRow, recipient_id)
    if row is None:
        return None
    return RecipientRecord(prefs=_prefs(row), created_at=row.created_at, updated_at=row.updated_at)


def get_recipients(
    *, session: Session, recipient_ids: Iterable[str]
) -> dict[str, domain.RecipientPrefs]:
    """The registered recipients among ``recipient_ids``."""
    rows = _rows(session, RecipientRow, RecipientRow.recipient_id, set(recipient_ids))
    return {row.recipient_id: _prefs(row) for row in rows}


# --- delivery log -----------------------------------------------------------------------------


def add_notifications(
    *, session: Session, drafts: Sequence[domain.NotificationDraft], now: dt.datetime
) -> list[domain.NotificationDraft]:
    """Record drafts not recorded yet (the unique key backs races); return the new ones."""
    if not drafts:
        return []
    existing = set(
        session.scalars(
            select(NotificationRow.id).where(NotificationRow.id.in_([d.id for d in drafts]))
        ).all()
    )
    new = [draft for draft in drafts if draft.id not in existing]
    session.add_all(
        NotificationRow(
            id=draft.id,
            recipient=draft.recipient,
            channel=draft.channel,
            subject=draft.subject,
            body=draft.body,
            status=draft.status,
            attempts=0,
            last_error=draft.last_error,
            cause_event_id=str(draft.cause_event_id),
            cause_event_type=draft.cause_event_type,
            campaign_id=draft.campaign_id,
            created_at=draft.created_at,
            next_attempt_at=draft.next_attempt_at,
            delivered_at=None,
            updated_at=now,
        )
        for draft in new
    )
    session.flush()
    return new


@dataclass(frozen=True)
class NotificationRecord:
    """A row of the delivery log as the API shows it."""

    id: str
    recipient: str
    channel: str
    subject: str
    body: str
    status: str
    attempts: int
    last_error: str | None
    cause_event_id: str
    cause_event_type: str
    campaign_id: str | None
    created_at: dt.datetime
    next_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None


def list_notifications(
    *,
    session: Session,
    recipient: str | None = None,
    status: str | None = None,
    cause_event_id: str | None = None,
    limit: int = 100,
) -> list[NotificationRecord]:
    """The delivery log, newest first, optionally filtered."""
    query = select(NotificationRow)
    if recipient is not None:
        query = query.where(NotificationRow.recipient == recipient)
    if status is not None:
        query = query.where(NotificationRow.status == status)
    if cause_event_id is not None:
        query = query.where(NotificationRow.cause_event_id == cause_event_id)
    rows = session.scalars(
        query.order_by(NotificationRow.created_at.desc(), NotificationRow.id).limit(limit)
    ).all()
    return [
        NotificationRecord(
            id=row.id,
            recipient=row.recipient,
            channel=row.channel,
            subject=row.subject,
            body=row.body,
            status=row.status,
            attempts=row.attempts,
            last_error=row.last_error,
            cause_event_id=row.cause_event_id,
            cause_event_type=row.cause_event_type,
            campaign_id=row.campaign_id,
            created_at=row.created_at,
            next_attempt_at=row.next_attempt_at,
            delivered_at=row.delivered_at,
        )
        for row in rows
    ]


def claim_due(
    *, session: Session, now: dt.datetime, lease_until: dt.datetime, limit: int
) -> list[domain.Delivery]:
    """Lease up to ``limit`` due pending notifications to this worker (until ``lease_until``).

    The lease moves ``next_attempt_at`` forward with a compare-and-set, so two workers never
    send the same notification at once, and a worker that dies mid-send leaves it to be retried
    when the lease expires.
    """
    rows = session.execute(
        select(NotificationRow, RecipientRow)
        .outerjoin(RecipientRow, RecipientRow.recipient_id == NotificationRow.recipient)
        .where(NotificationRow.status == "pending", NotificationRow.next_attempt_at <= now)
        .order_by(NotificationRow.next_attempt_at, NotificationRow.id)
        .limit(limit)
    ).all()
    claimed: list[domain.Delivery] = []
    for notification, recipient in rows:
        result = session.execute(
            update(NotificationRow)
            .where(
                NotificationRow.id == notification.id,
                NotificationRow.status == "pending",
                NotificationRow.next_attempt_at == notification.next_attempt_at,
            )
            .values(next_attempt_at=lease_until)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            continue
        prefs = _prefs(recipient) if recipient is not None else None
        enabled = prefs is not None and notification.channel in prefs.channels
        claimed.append(
            domain.Delivery(
                id=notification.id,
                recipient=notification.recipient,
                channel=notification.channel,
                subject=notification.subject,
                body=notification.body,
                attempts=notification.attempts,
                cause_event_id=uuid.UUID(notification.cause_event_id),
                cause_event_type=notification.cause_event_type,
                campaign_id=notification.campaign_id,
                created_at=notification.created_at,
                address=prefs.address(notification.channel) if enabled and prefs else None,
            )
        )
    return claimed


def settle_notification(
    *,
    session: Session,
    notification_id: str,
    settlement: domain.Settlement,
    now: dt.datetime,
    leased_until: dt.datetime,
) -> bool:
    """Write the outcome of a delivery attempt to the log; False (nothing written) when this
    worker's lease is gone (it expired and another worker leased the notification again), so
    the outcome and its event are recorded once, by the lease holder."""
    result = session.execute(
        update(NotificationRow)
        .where(
            NotificationRow.id == notification_id,
            NotificationRow.status == "pending",
            NotificationRow.next_attempt_at == leased_until,
        )
        .values(
            status=settlement.status,
            attempts=settlement.attempts,
            last_error=settlement.last_error,
            next_attempt_at=settlement.next_attempt_at,
            delivered_at=settlement.delivered_at,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]
