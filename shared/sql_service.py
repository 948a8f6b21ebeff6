"""What the services that own a SQL store (planning, execution, notifier) share at start:
their settings (connection pool, migrations, outbox and inbox retention), opening the store
on a database at the head revision, and the periodic pruning of outbox and inbox rows."""

from __future__ import annotations

import asyncio
import datetime as dt

import structlog
from pydantic import Field
from sqlalchemy import Engine

from shared.migrations import MigrationSet, SchemaNotAtHead, migrate, require_head
from shared.runtime import supervise
from shared.settings import CommonSettings
from shared.sql import MessagingTables, PoolOptions, make_engine, prune_messaging, utcnow

log = structlog.get_logger(__name__)


class SqlStoreSettings(CommonSettings):
    """Common settings plus the SQL store's pool, migration and retention knobs."""

    database_url: str = Field(
        default="", description="SQLAlchemy URL (each service names its own)."
    )

    database_pool_size: int = Field(
        default=5, ge=1, le=1000, description="PostgreSQL: connections each replica keeps open."
    )
    database_max_overflow: int = Field(
        default=10, ge=0, le=1000, description="PostgreSQL: extra connections allowed under load."
    )
    database_pool_recycle_s: float = Field(
        default=1800.0,
        gt=0,
        description="PostgreSQL: a connection older than this is replaced before use.",
    )
    database_pool_timeout_s: float = Field(
        default=30.0, gt=0, description="PostgreSQL: longest wait for a free pooled connection."
    )
    database_migrate_on_start: bool = Field(
        default=False,
        description="Migrate the database at start instead of refusing to start when it is not "
        "at head (development and tests; production runs `mrm migrate` once, e.g. as a Job).",
    )
    outbox_retention_s: float = Field(
        default=7 * 24 * 3600.0,
        ge=3600,
        description="Published outbox rows and inbox (processed event) rows older than this "
        "are deleted; an event redelivered within it is still recognised.",
    )
    outbox_prune_interval_s: float = Field(
        default=3600.0, gt=0, description="Seconds between two prunings of outbox and inbox."
    )

    def pool_options(self) -> PoolOptions:
        """The connection pool these settings ask for."""
        return PoolOptions(
            size=self.database_pool_size,
            max_overflow=self.database_max_overflow,
            recycle_s=self.database_pool_recycle_s,
            timeout_s=self.database_pool_timeout_s,
        )


async def open_store(settings: SqlStoreSettings, migrations: MigrationSet) -> Engine:
    """The service's engine on a database at the head revision: migrated first when
    ``database_migrate_on_start`` is set, else a database behind raises
    :class:`shared.migrations.SchemaNotAtHead` (the service refuses to start)."""
    engine = make_engine(settings.database_url, pool=settings.pool_options())
    try:
        if settings.database_migrate_on_start:
            await asyncio.to_thread(migrate, engine, migrations)
        else:
            await asyncio.to_thread(require_head, engine, migrations)
    except SchemaNotAtHead as exc:
        engine.dispose()
        log.error("database_not_at_head", service=migrations.service, detail=str(exc))
        raise
    except BaseException:
        engine.dispose()
        raise
    return engine


class MessagingPruner:
    """Deletes published outbox rows and inbox rows older than the retention, every
    ``outbox_prune_interval_s`` (each replica runs one: deletes by age are idempotent)."""

    def __init__(self, engine: Engine, tables: MessagingTables, settings: SqlStoreSettings) -> None:
        self.engine = engine
        self.tables = tables
        self.retention = dt.timedelta(seconds=settings.outbox_retention_s)
        self.interval_s = settings.outbox_prune_interval_s

    async def prune_once(self, *, now: dt.datetime | None = None) -> int:
        """One pruning round; returns how many rows went."""
        older_than = (now or utcnow()) - self.retention
        deleted = await asyncio.to_thread(
            prune_messaging, self.engine, self.tables, older_than=older_than
        )
        if deleted:
            log.info("messaging_rows_pruned", rows=deleted, older_than=older_than.isoformat())
        return deleted

    async def run(self) -> None:
        """Prune forever (a failing round is logged and retried)."""

        async def round_() -> None:
            await self.prune_once()

        await supervise("prune_messaging", round_, every_s=self.interval_s)
