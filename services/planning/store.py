"""Planning's relational store: SQLAlchemy models and the unit of work (state + outbox)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from decimal import Decimal

from pydantic_core import to_jsonable_python
from sqlalchemy import (
    Connection,
    Date,
    Engine,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    inspect,
    select,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from services.planning.domain import CampaignFacts, PlanFacts
from shared.auth import Principal
from shared.events import EventData, new_envelope
from shared.events.planning import KpiTargetSet, StageScheduled
from shared.migrations import migrate
from shared.sql import (
    UtcDateTime,
    add_to_outbox,
    claim_event,
    create_missing_tables,
    define_messaging_tables,
    utcnow,
)

SOURCE = "planning"


class Base(DeclarativeBase):
    """Planning's own metadata (its tables are prefixed ``planning_``)."""


MESSAGING = define_messaging_tables(Base.metadata, prefix="planning")


class Plan(Base):
    """A strategic marketing plan."""

    __tablename__ = "planning_plans"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    period_start: Mapped[dt.date] = mapped_column(Date)
    period_end: Mapped[dt.date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    owner: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(20), default="draft")
    budget: Mapped[Decimal | None] = mapped_column(Numeric(18, 2), nullable=True)
    approved_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    approved_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Campaign(Base):
    """A campaign of a plan, with its budget and measurable goals."""

    __tablename__ = "planning_campaigns"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    plan_id: Mapped[str] = mapped_column(ForeignKey("planning_plans.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(64))
    brand: Mapped[str | None] = mapped_column(String(200), nullable=True)
    owner: Mapped[str] = mapped_column(String(128))
    budget: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    currency: Mapped[str] = mapped_column(String(3))
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date] = mapped_column(Date)
    gross_margin: Mapped[Decimal] = mapped_column(Numeric(7, 6), default=Decimal("1"))
    status: Mapped[str] = mapped_column(String(20), default="draft")
    version: Mapped[int] = mapped_column(Integer, default=1)
    line_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # the sales unit the campaign plans an uplift against, and the uplift (in its currency)
    sales_unit_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    planned_uplift: Mapped[Decimal | None] = mapped_column(Numeric(18, 2), nullable=True)
    # the customer segment the campaign aims at (rfm:<name> or a rule-based segment's id)
    target_segment: Mapped[str | None] = mapped_column(String(128), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Stage(Base):
    """A stage of a campaign with a deadline and a responsible executor."""

    __tablename__ = "planning_stages"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("planning_campaigns.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    deadline: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    starts_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    assignee: Mapped[str | None] = mapped_column(String(128), nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)


class KpiTarget(Base):
    """A campaign's target for one KPI (one per KPI; setting it again replaces it)."""

    __tablename__ = "planning_kpi_targets"
    __table_args__ = (UniqueConstraint("campaign_id", "kpi", name="uq_planning_target_kpi"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("planning_campaigns.id"), index=True)
    kpi: Mapped[str] = mapped_column(String(64))
    target: Mapped[Decimal] = mapped_column(Numeric(28, 10))
    direction: Mapped[str] = mapped_column(String(20))
    weight: Mapped[Decimal] = mapped_column(Numeric(18, 6), default=Decimal("1"))
    tolerance: Mapped[Decimal] = mapped_column(Numeric(7, 6), default=Decimal("0.05"))


class BudgetReallocation(Base):
    """A budget move between two campaigns or two budget lines of a plan (by hand or from a
    proposal)."""

    __tablename__ = "planning_budget_reallocations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    plan_id: Mapped[str] = mapped_column(ForeignKey("planning_plans.id"), index=True)
    from_campaign_id: Mapped[str] = mapped_column(String(64))
    to_campaign_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    requested_by: Mapped[str] = mapped_column(String(128))
    proposal_event_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # a move between budget lines names them here (its campaign ids are then empty); a
    # campaign's money going back to a line has from_campaign_id and to_line_id
    from_line_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    to_line_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    rule_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ReallocationProposal(Base):
    """A reallocation the measurement service proposed, kept for the CMO to accept or ignore."""

    __tablename__ = "planning_reallocation_proposals"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    plan_id: Mapped[str] = mapped_column(String(64), index=True)
    from_campaign_id: Mapped[str] = mapped_column(String(64))
    to_campaign_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    reason: Mapped[str] = mapped_column(Text)
    proposed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(20), default="open")
    """open, accepted, superseded (a newer proposal for the same donor), applied (by its
    rule, mode apply) or failed (an applied move planning's checks refused: ``note``)."""
    # added with the plans' own rules: nullable, so an existing table gains them
    to_line_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    rule_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mode: Mapped[str | None] = mapped_column(String(8), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class AuditEntry(Base):
    """One change to a plan, line, campaign, stage, target or reallocation: who, when, what
    it was before and after."""

    __tablename__ = "planning_audit"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64), index=True)
    plan_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(20))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), index=True)
    sequence: Mapped[int] = mapped_column(Integer)
    before: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON
    after: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class ChangeRequest(Base):
    """A change to an approved campaign's budget, line or dates, waiting for cmo or admin."""

    __tablename__ = "planning_change_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("planning_campaigns.id"), index=True)
    plan_id: Mapped[str] = mapped_column(String(64))
    changes: Mapped[str] = mapped_column(Text)  # JSON: field → requested value as text
    requested_by: Mapped[str] = mapped_column(String(128))
    requested_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(20), default="open")
    decided_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


def adopt_legacy_schema(connection: Connection) -> None:
    """Bring a database made before migrations to the baseline revision, as planning's start
    did then: missing tables and nullable columns added, older numeric columns widened."""
    create_missing_tables(connection, Base.metadata)
    if connection.dialect.name != "postgresql":
        return
    # columns created before they held what the event contract allows (Measure, Weight,
    # Share) are widened, once; widening keeps every stored value
    inspector = inspect(connection)
    for table, column in _WIDENED:
        wanted = Base.metadata.tables[table].c[column].type
        found = next(c["type"] for c in inspector.get_columns(table) if c["name"] == column)
        if (found.precision, found.scale) == (wanted.precision, wanted.scale):  # type: ignore[attr-defined]
            continue
        sql_type = wanted.compile(dialect=connection.dialect)
        connection.execute(text(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {sql_type}"))


_WIDENED = (
    ("planning_campaigns", "gross_margin"),
    ("planning_kpi_targets", "target"),
    ("planning_kpi_targets", "weight"),
    ("planning_kpi_targets", "tolerance"),
)


class UnitOfWork:
    """One transaction: state changes plus the outbox rows of the events they produce."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.published = 0
        self.audited = 0

    def publish(self, events: list[EventData]) -> None:
        """Queue ``events`` in the outbox of this transaction."""
        for data in events:
            envelope = new_envelope(data, source=SOURCE)
            add_to_outbox(
                self.session, MESSAGING, envelope=envelope, topic=data.topic, key=data.key()
            )
            self.published += 1

    def audit(
        self,
        *,
        entity_type: str,
        entity_id: str,
        plan_id: str | None,
        action: str,
        actor: Principal,
        before: object = None,
        after: object = None,
        reason: str | None = None,
    ) -> None:
        """Record a change in the audit log of this transaction (``before``/``after``: the
        entity's state as a mapping or facts, None where there is none)."""
        self.audited += 1
        self.session.add(
            AuditEntry(
                id=str(uuid.uuid4()),
                entity_type=entity_type,
                entity_id=entity_id,
                plan_id=plan_id,
                action=action,
                actor=actor.subject,
                role=actor.role,
                at=utcnow(),
                sequence=self.audited,
                before=_as_json(before),
                after=_as_json(after),
                reason=reason,
            )
        )

    def claim(self, *, consumer: str, event_id: object) -> bool:
        """Record an incoming event as processed; False if it already was."""
        return claim_event(self.session, MESSAGING, consumer=consumer, event_id=event_id)  # type: ignore[arg-type]


def _as_json(state: object) -> str | None:
    if state is None:
        return None
    if is_dataclass(state) and not isinstance(state, type):
        state = asdict(state)
    return json.dumps(to_jsonable_python(state), sort_keys=True)


class Store:
    """Opens units of work on planning's engine and wakes the relay after each commit."""

    def __init__(self, engine: Engine, *, on_commit: Callable[[], None] = lambda: None) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._on_commit = on_commit

    def create_schema(self) -> None:
        """Migrate planning's database to the head revision (``mrm migrate planning``; tests
        and ``mrm up`` call it before the service starts)."""
        from services.planning.migrations import migration_set

        migrate(self.engine, migration_set())

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        """A transaction committed on success and rolled back on any error."""
        with self._sessions() as session, session.begin():
            uow = UnitOfWork(session)
            yield uow
        if uow.published:
            self._on_commit()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only session."""
        with self._sessions() as session:
            yield session


def get_plan(*, session: Session, plan_id: str) -> Plan | None:
    """The plan with ``plan_id``, or None."""
    return session.get(Plan, plan_id)


def get_campaign(*, session: Session, campaign_id: str) -> Campaign | None:
    """The campaign with ``campaign_id``, or None."""
    return session.get(Campaign, campaign_id)


def list_plans(*, session: Session) -> list[Plan]:
    """All plans, newest first."""
    return list(session.scalars(select(Plan).order_by(Plan.created_at.desc())))


def list_campaigns(*, session: Session, plan_id: str) -> list[Campaign]:
    """The campaigns of a plan in creation order."""
    return list(
        session.scalars(
            select(Campaign).where(Campaign.plan_id == plan_id).order_by(Campaign.created_at)
        )
    )


def list_stages(*, session: Session, campaign_id: str) -> list[Stage]:
    """The stages of a campaign by deadline."""
    return list(
        session.scalars(
            select(Stage).where(Stage.campaign_id == campaign_id).order_by(Stage.deadline)
        )
    )


def list_targets(*, session: Session, campaign_id: str) -> list[KpiTarget]:
    """The KPI targets of a campaign."""
    return list(
        session.scalars(
            select(KpiTarget).where(KpiTarget.campaign_id == campaign_id).order_by(KpiTarget.kpi)
        )
    )


def find_target(*, session: Session, campaign_id: str, kpi: str) -> KpiTarget | None:
    """The target of ``kpi`` for a campaign, or None."""
    return session.scalars(
        select(KpiTarget).where(KpiTarget.campaign_id == campaign_id, KpiTarget.kpi == kpi)
    ).first()


def list_proposals(*, session: Session, plan_id: str) -> list[ReallocationProposal]:
    """Reallocation proposals of a plan, newest first."""
    return list(
        session.scalars(
            select(ReallocationProposal)
            .where(ReallocationProposal.plan_id == plan_id)
            .order_by(ReallocationProposal.proposed_at.desc())
        )
    )


def open_proposals_from(
    *, session: Session, plan_id: str, campaign_id: str
) -> list[ReallocationProposal]:
    """The open proposals of a plan that take budget from ``campaign_id``."""
    return list(
        session.scalars(
            select(ReallocationProposal).where(
                ReallocationProposal.plan_id == plan_id,
                ReallocationProposal.from_campaign_id == campaign_id,
                ReallocationProposal.status == "open",
            )
        )
    )


def plan_facts(plan: Plan) -> PlanFacts:
    """The domain view of a plan row."""
    return PlanFacts(
        plan_id=plan.id,
        name=plan.name,
        period_start=plan.period_start,
        period_end=plan.period_end,
        currency=plan.currency,
        owner=plan.owner,
        status=plan.status,
        budget=None if plan.budget is None else Decimal(plan.budget),
    )


def campaign_facts(campaign: Campaign) -> CampaignFacts:
    """The domain view of a campaign row."""
    return CampaignFacts(
        campaign_id=campaign.id,
        plan_id=campaign.plan_id,
        name=campaign.name,
        channel=campaign.channel,
        brand=campaign.brand,
        owner=campaign.owner,
        budget=Decimal(campaign.budget),
        currency=campaign.currency,
        start_date=campaign.start_date,
        end_date=campaign.end_date,
        gross_margin=Decimal(campaign.gross_margin),
        status=campaign.status,
        version=campaign.version,
        line_id=campaign.line_id,
        sales_unit_id=campaign.sales_unit_id,
        planned_uplift=(
            None if campaign.planned_uplift is None else Decimal(campaign.planned_uplift)
        ),
        target_segment=campaign.target_segment,
    )


def stage_event(stage: Stage) -> StageScheduled:
    """A stage row as the event that announces it."""
    return StageScheduled(
        stage_id=stage.id,
        campaign_id=stage.campaign_id,
        name=stage.name,
        deadline=stage.deadline,
        starts_at=stage.starts_at,
        assignee=stage.assignee,
        version=stage.version,
    )


def target_event(target: KpiTarget) -> KpiTargetSet:
    """A KPI target row as the event that announces it."""
    return KpiTargetSet(
        target_id=target.id,
        campaign_id=target.campaign_id,
        kpi=target.kpi,
        target=Decimal(target.target),
        direction=target.direction,  # type: ignore[arg-type]
        weight=Decimal(target.weight),
        tolerance=Decimal(target.tolerance),
    )


def save_campaign(*, session: Session, facts: CampaignFacts) -> Campaign:
    """Insert or update the row of a campaign from its facts."""
    row = session.get(Campaign, facts.campaign_id)
    if row is None:
        row = Campaign(id=facts.campaign_id, created_at=utcnow())
        session.add(row)
    row.plan_id = facts.plan_id
    row.name = facts.name
    row.channel = facts.channel
    row.brand = facts.brand
    row.owner = facts.owner
    row.budget = facts.budget
    row.currency = facts.currency
    row.start_date = facts.start_date
    row.end_date = facts.end_date
    row.gross_margin = facts.gross_margin
    row.status = facts.status
    row.version = facts.version
    row.line_id = facts.line_id
    row.sales_unit_id = facts.sales_unit_id
    row.planned_uplift = facts.planned_uplift
    row.target_segment = facts.target_segment
    row.updated_at = utcnow()
    session.flush()
    return row


# --- audit and change requests --------------------------------------------------------------


def list_audit(
    *,
    session: Session,
    entity_id: str | None,
    plan_id: str | None,
    limit: int,
    offset: int,
) -> list[AuditEntry]:
    """Audit entries of an entity or a plan (or all), newest first."""
    query = select(AuditEntry)
    if entity_id is not None:
        query = query.where(AuditEntry.entity_id == entity_id)
    if plan_id is not None:
        query = query.where(AuditEntry.plan_id == plan_id)
    query = query.order_by(AuditEntry.at.desc(), AuditEntry.sequence.desc(), AuditEntry.id)
    return list(session.scalars(query.limit(limit).offset(offset)))


def open_change_requests(*, session: Session, campaign_id: str) -> list[ChangeRequest]:
    """The open change requests of a campaign (at most one: a newer one supersedes)."""
    return list(
        session.scalars(
            select(ChangeRequest).where(
                ChangeRequest.campaign_id == campaign_id, ChangeRequest.status == "open"
            )
        )
    )


def list_change_requests(*, session: Session, campaign_id: str) -> list[ChangeRequest]:
    """Every change request of a campaign, newest first."""
    return list(
        session.scalars(
            select(ChangeRequest)
            .where(ChangeRequest.campaign_id == campaign_id)
            .order_by(ChangeRequest.requested_at.desc(), ChangeRequest.id)
        )
    )


def list_reallocations(*, session: Session, plan_id: str) -> list[BudgetReallocation]:
    """The budget moves of a plan, newest first."""
    return list(
        session.scalars(
            select(BudgetReallocation)
            .where(BudgetReallocation.plan_id == plan_id)
            .order_by(BudgetReallocation.created_at.desc(), BudgetReallocation.id)
        )
    )
