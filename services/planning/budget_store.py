"""Planning's tables of the plan's budget: budget lines and the spend events planning keeps
for actual spend, with the queries the budget use cases need. They belong to planning's
metadata (``store.Base``)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import ForeignKey, Integer, Numeric, String, Text, func, insert, select, type_coerce
from sqlalchemy.orm import Mapped, Session, mapped_column

from services.planning.store import Base, Plan, list_campaigns, plan_facts
from shared.budget import Budget, Draw, LineFacts, Period, month_of
from shared.sql import Cents, UtcDateTime, existing_ids, utcnow


class BudgetLine(Base):
    """A budget line of a plan: a named node under the plan or another line."""

    __tablename__ = "planning_budget_lines"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    plan_id: Mapped[str] = mapped_column(ForeignKey("planning_plans.id"), index=True)
    parent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    name: Mapped[str] = mapped_column(String(200))
    brand: Mapped[str | None] = mapped_column(String(200), nullable=True)
    channel: Mapped[str | None] = mapped_column(String(64), nullable=True)
    region: Mapped[str | None] = mapped_column(String(200), nullable=True)
    partner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    months: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON {"YYYY-MM": "amount"}
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class SpendRecord(Base):
    """A spend event from ``mrm.spend.v1`` (its id unique: the event's processed record), kept
    with its month so the budget view shows actual spend per line and month."""

    __tablename__ = "planning_spend"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(128), index=True)
    month: Mapped[str] = mapped_column(String(7))
    amount: Mapped[Decimal] = mapped_column(Cents())
    currency: Mapped[str] = mapped_column(String(3))


def get_line(*, session: Session, line_id: str) -> BudgetLine | None:
    """The budget line with ``line_id``, or None."""
    return session.get(BudgetLine, line_id)


def list_lines(*, session: Session, plan_id: str) -> list[BudgetLine]:
    """The budget lines of a plan in creation order."""
    return list(
        session.scalars(
            select(BudgetLine)
            .where(BudgetLine.plan_id == plan_id)
            .order_by(BudgetLine.created_at, BudgetLine.id)
        )
    )


def line_facts(line: BudgetLine) -> LineFacts:
    """The domain view of a budget line row."""
    months = None
    if line.months is not None:
        months = {key: Decimal(value) for key, value in json.loads(line.months).items()}
    return LineFacts(
        line_id=line.id,
        plan_id=line.plan_id,
        parent_id=line.parent_id,
        name=line.name,
        brand=line.brand,
        channel=line.channel,
        region=line.region,
        partner=line.partner,
        amount=Decimal(line.amount),
        months=months,
        version=line.version,
    )


def save_line(*, session: Session, facts: LineFacts) -> BudgetLine:
    """Insert or update the row of a budget line from its facts."""
    row = session.get(BudgetLine, facts.line_id)
    if row is None:
        row = BudgetLine(id=facts.line_id, plan_id=facts.plan_id, created_at=utcnow())
        session.add(row)
    row.parent_id = facts.parent_id
    row.name = facts.name
    row.brand = facts.brand
    row.channel = facts.channel
    row.region = facts.region
    row.partner = facts.partner
    row.amount = facts.amount
    row.months = (
        None
        if facts.months is None
        else json.dumps({key: str(value) for key, value in sorted(facts.months.items())})
    )
    row.version = facts.version
    session.flush()
    return row


def budget_of(*, session: Session, plan: Plan) -> Budget:
    """A plan's budget: its period and cap, its lines and what its campaigns draw."""
    return Budget(
        Period(start=plan.period_start, end=plan.period_end, cap=plan_facts(plan).budget),
        (line_facts(line) for line in list_lines(session=session, plan_id=plan.id)),
        (
            Draw(
                campaign_id=campaign.id,
                line_id=campaign.line_id,
                budget=Decimal(campaign.budget),
                start_date=campaign.start_date,
                end_date=campaign.end_date,
                status=campaign.status,
            )
            for campaign in list_campaigns(session=session, plan_id=plan.id)
        ),
    )


@dataclass(frozen=True)
class SpendRow:
    """A spend event as planning keeps it."""

    event_id: uuid.UUID
    campaign_id: str
    occurred_at: dt.datetime
    amount: Decimal
    currency: str


_IDS_PER_QUERY = 500


def record_spend(*, session: Session, spends: Sequence[SpendRow]) -> int:
    """Keep the spend events not kept yet (repeats within ``spends`` count once); how many."""
    seen = existing_ids(session, SpendRecord.event_id, {str(spend.event_id) for spend in spends})
    fresh: dict[str, dict[str, object]] = {}
    for spend in spends:
        event_id = str(spend.event_id)
        if event_id in seen or event_id in fresh:
            continue
        fresh[event_id] = {
            "event_id": event_id,
            "campaign_id": spend.campaign_id,
            "month": month_of(spend.occurred_at.astimezone(dt.UTC)),
            "amount": spend.amount,
            "currency": spend.currency,
        }
    if fresh:
        session.execute(insert(SpendRecord), list(fresh.values()))
    return len(fresh)


def spend_by_month(
    *, session: Session, campaign_ids: Iterable[str]
) -> dict[str, dict[str, dict[str, Decimal]]]:
    """Campaign → currency → month → recorded spend."""
    ids = sorted(set(campaign_ids))
    total = type_coerce(func.sum(SpendRecord.amount), Cents())
    out: dict[str, dict[str, dict[str, Decimal]]] = {}
    for start in range(0, len(ids), _IDS_PER_QUERY):
        rows = session.execute(
            select(SpendRecord.campaign_id, SpendRecord.currency, SpendRecord.month, total)
            .where(SpendRecord.campaign_id.in_(ids[start : start + _IDS_PER_QUERY]))
            .group_by(SpendRecord.campaign_id, SpendRecord.currency, SpendRecord.month)
        )
        for campaign_id, currency, month, amount in rows:
            out.setdefault(campaign_id, {}).setdefault(currency, {})[month] = amount
    return out
