"""Relational plumbing for services that own a SQL store: engine, column types, outbox, inbox.

The outbox row is written in the same transaction as the state change it describes, and the
inbox row (processed ``event_id``) in the same transaction as the effect of consuming it, so a
change never exists without its event and a redelivered event never applies twice.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.types import TypeDecorator

from shared.events import Envelope
from shared.tracing import TRACE_KEY, current_trace_headers


def utcnow() -> dt.datetime:
    """The current time, timezone-aware, in UTC."""
    return dt.datetime.now(dt.UTC)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite keeps no offset by itself)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass a timezone-aware value")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Cents(TypeDecorator[Decimal]):
    """A money amount with two decimals, stored exactly as integer cents (SQLite has no decimal)."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        return int((Decimal(value) * 100).to_integral_value())

    def process_result_value(self, value: int | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(int(value)).scaleb(-2)


@dataclass(frozen=True)
class PoolOptions:
    """Connection pool of a server database (PostgreSQL): connections kept open, extra ones
    allowed under load, age after which a connection is replaced (proxies and servers close
    idle ones) and how long a caller waits for a free connection."""

    size: int = 5
    max_overflow: int = 10
    recycle_s: float = 1800.0
    timeout_s: float = 30.0


def make_engine(url: str, *, pool: PoolOptions | None = None) -> Engine:
    """An engine for ``url``; SQLite files get their directory, WAL and foreign keys, server
    databases the ``pool`` settings."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        # psycopg 3 is the driver we ship; plain postgresql:// URLs would ask for psycopg2.
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if parsed.drivername.startswith("sqlite"):
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    pool = pool or PoolOptions()
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool.size,
        max_overflow=pool.max_overflow,
        pool_recycle=int(pool.recycle_s),
        pool_timeout=pool.timeout_s,
    )


def prune_messaging(engine: Engine, tables: MessagingTables, *, older_than: dt.datetime) -> int:
    """Delete outbox rows published before ``older_than`` and inbox rows processed before it;
    returns how many rows went. Unpublished outbox rows are never deleted, and an event
    redelivered within the retention still finds its inbox row. A DELETE by age is idempotent,
    so every replica may run it."""
    with engine.begin() as connection:
        outbox = connection.execute(
            delete(tables.outbox).where(
                tables.outbox.c.published_at.is_not(None),
                tables.outbox.c.published_at < older_than,
            )
        ).rowcount
        inbox = connection.execute(
            delete(tables.inbox).where(tables.inbox.c.processed_at < older_than)
        ).rowcount
    return int(outbox or 0) + int(inbox or 0)


def create_missing_tables(
    connection: Connection,
    metadata: MetaData,
    *,
    then: Callable[[Connection, frozenset[str]], None] | None = None,
) -> None:
    """Bring a database made by ``create_all`` (releases before migrations) to today's tables
    in the caller's transaction: the tables of ``metadata`` that do not exist are created and
    the nullable columns added since are added. ``then`` runs next with the names of the tables
    this call created (e.g. to fill a new one). Used only to adopt such a database
    (``shared.migrations``); schemas are otherwise made by migrations."""
    existing = set(inspect(connection).get_table_names())
    metadata.create_all(connection)
    _add_new_columns(connection, metadata, tables=existing)
    if then is not None:
        then(connection, frozenset(set(metadata.tables) - existing))


def _add_new_columns(connection: Connection, metadata: MetaData, *, tables: set[str]) -> None:
    # a table created by an earlier release lacks the columns added since; they are nullable,
    # so adding them keeps every row valid (later changes are Alembic revisions)
    inspector = inspect(connection)
    for name in sorted(tables & set(metadata.tables)):
        present = {column["name"] for column in inspector.get_columns(name)}
        for column in metadata.tables[name].columns:
            if column.name in present:
                continue
            if not column.nullable:
                raise RuntimeError(f"{name}.{column.name} is new and NOT NULL: migrate by hand")
            sql_type = column.type.compile(dialect=connection.dialect)
            connection.execute(text(f'ALTER TABLE {name} ADD COLUMN "{column.name}" {sql_type}'))


def database_answers(engine: Engine) -> bool:
    """Whether the database answers ``SELECT 1`` (a readiness probe: never raises)."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError):
        return False
    return True


@dataclass(frozen=True)
class MessagingTables:
    """A service's outbox (events to publish), inbox (events already processed) and the lease
    that lets one outbox relay of its replicas publish at a time (``shared.outbox``)."""

    outbox: Table
    inbox: Table
    lease: Table


def define_messaging_tables(metadata: MetaData, *, prefix: str) -> MessagingTables:
    """Add ``<prefix>_outbox``, ``<prefix>_inbox`` and ``<prefix>_outbox_lease`` to a
    service's metadata."""
    outbox = Table(
        f"{prefix}_outbox",
        metadata,
        Column(
            "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("topic", String(200), nullable=False),
        Column("key", String(200), nullable=True),
        Column("payload", JSON, nullable=False),
        Column("created_at", UtcDateTime(), nullable=False, default=utcnow),
        Column("published_at", UtcDateTime(), nullable=True, index=True),
    )
    inbox = Table(
        f"{prefix}_inbox",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("processed_at", UtcDateTime(), nullable=False, default=utcnow),
        UniqueConstraint("consumer", "event_id", name=f"uq_{prefix}_inbox_event"),
    )
    lease = Table(
        f"{prefix}_outbox_lease",
        metadata,
        Column("name", String(50), primary_key=True),
        Column("holder", String(64), nullable=True),
        Column("expires_at", UtcDateTime(), nullable=True),
    )
    return MessagingTables(outbox=outbox, inbox=inbox, lease=lease)


def add_to_outbox(
    session: Session,
    tables: MessagingTables,
    *,
    envelope: Envelope,
    topic: str,
    key: str | None,
    skip_existing: bool = False,
) -> bool:
    """Queue an event for publication in the caller's transaction; True if it was queued.

    With ``skip_existing`` an event whose id is already in the outbox is left out (False), so a
    producer with deterministic event ids can re-run a decision without a duplicate.
    """
    if skip_existing:
        queued = session.execute(
            select(tables.outbox.c.id).where(tables.outbox.c.event_id == str(envelope.event_id))
        ).first()
        if queued is not None:
            return False
    session.execute(
        insert(tables.outbox).values(
            event_id=str(envelope.event_id),
            topic=topic,
            key=key,
            payload=_with_trace(envelope.model_dump(mode="json")),
            created_at=utcnow(),
        )
    )
    return True


def claim_event(
    session: Session, tables: MessagingTables, *, consumer: str, event_id: uuid.UUID
) -> bool:
    """Record ``event_id`` as processed by ``consumer``; False if it already was (a redelivery).

    The unique key backs this check when two deliveries race; the loser's transaction fails and
    its message is retried, then seen as processed.
    """
    seen = session.execute(
        select(tables.inbox.c.event_id).where(
            tables.inbox.c.consumer == consumer, tables.inbox.c.event_id == str(event_id)
        )
    ).first()
    if seen is not None:
        return False
    session.execute(
        insert(tables.inbox).values(
            consumer=consumer, event_id=str(event_id), processed_at=utcnow()
        )
    )
    return True


_IDS_PER_QUERY = 500


def existing_ids(
    session: Session, column: InstrumentedAttribute[str], ids: Collection[str]
) -> set[str]:
    """Those of ``ids`` already in ``column`` (the processed-event check of a batch consumer;
    asked in chunks, as a very long ``IN`` list is slow or refused)."""
    wanted = sorted(ids)
    found: set[str] = set()
    for start in range(0, len(wanted), _IDS_PER_QUERY):
        chunk = wanted[start : start + _IDS_PER_QUERY]
        found.update(session.scalars(select(column).where(column.in_(chunk))))
    return found


def _with_trace(payload: dict[str, Any]) -> dict[str, Any]:
    """The outbox payload with the trace context of the transaction that queued it (when one
    is traced), so the relay's publish span continues the request's trace."""
    carrier = current_trace_headers()
    if carrier:
        payload[TRACE_KEY] = carrier
    return payload
