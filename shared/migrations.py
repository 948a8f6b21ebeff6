"""Schema migrations of the services that own a SQL store (Alembic), run once under a lock.

Each service keeps its revisions in ``services/<service>/migrations/`` and its version in its
own table (``<service>_alembic_version``), so services sharing one database (the embedded
default may) never read each other's revision. ``mrm migrate`` (a Kubernetes Job, ``mrm up``)
calls :func:`migrate`; a service at start calls :func:`require_head` and refuses to run on a
database that is not at the code's head revision.

Concurrency: several jobs or replicas may migrate one empty database at once. On PostgreSQL
they queue on a session advisory lock (``pg_advisory_lock``) held for the whole upgrade; on
SQLite on an exclusive file lock next to the database file. The one that gets the lock first
migrates; the others find the database at head and do nothing.

Adoption: a database whose tables were made by ``create_all`` (releases before migrations) has
the service's tables and no version table. It is brought to the baseline the way those releases
did at start (missing tables created, new nullable columns added, the service's data steps) and
stamped with the baseline revision, after which later revisions apply as usual.
"""

from __future__ import annotations

import fcntl
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, Table, UniqueConstraint, inspect, text
from sqlalchemy.engine import Connection, make_url

# Alembic runs a revision through module-level proxies (``alembic.op``, ``alembic.context``)
# bound to one migration at a time: two migrations in threads of one process (services
# started side by side in one process, as the tests do) must take turns.
_ALEMBIC = threading.Lock()


class SchemaNotAtHead(RuntimeError):
    """The database is not at the revision the code expects: run ``mrm migrate``."""


@dataclass(frozen=True)
class MigrationSet:
    """One service's migrations: its revisions, metadata and how a pre-migration database is
    brought to the baseline before it is stamped (``adopt``)."""

    service: str
    directory: Path
    metadata: MetaData
    baseline: str
    adopt: Callable[[Connection], None] = field(default=lambda _connection: None)

    @property
    def version_table(self) -> str:
        """The table holding this service's revision."""
        return f"{self.service}_alembic_version"

    def owns(self, name: str | None, kind: str, _parents: object = None) -> bool:
        """Whether a database object is this service's (its tables are prefixed with its
        name): a database shared with the other services holds theirs too."""
        return kind != "table" or (name or "").startswith(f"{self.service}_")

    def config(self, connection: Connection | None = None) -> Config:
        """An Alembic config for these revisions (on ``connection`` when given)."""
        config = Config()
        config.set_main_option("script_location", str(self.directory))
        config.attributes["migration_set"] = self
        config.attributes["connection"] = connection
        return config

    def head(self) -> str | None:
        """The newest revision (None: none written yet)."""
        return ScriptDirectory.from_config(self.config()).get_current_head()


def run_env() -> None:
    """The body of every service's ``env.py``: run the revisions on the given connection.
    Imported rather than run by Alembic (a walk over the packages imports every module), the
    file does nothing."""
    if not isinstance(getattr(context, "config", None), Config):
        return
    migration_set: MigrationSet = context.config.attributes["migration_set"]
    connection: Connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=migration_set.metadata,
        version_table=migration_set.version_table,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=migration_set.owns,
        include_object=_compared,
    )
    with context.begin_transaction():
        context.run_migrations()


def current_revision(engine: Engine, migration_set: MigrationSet) -> str | None:
    """The revision the database is at (None: never migrated)."""
    with engine.connect() as connection:
        migration = MigrationContext.configure(
            connection, opts={"version_table": migration_set.version_table}
        )
        return migration.get_current_revision()


def require_head(engine: Engine, migration_set: MigrationSet) -> None:
    """Raise :class:`SchemaNotAtHead` unless the database is at the head revision."""
    found = current_revision(engine, migration_set)
    head = migration_set.head()
    if found != head:
        known = {
            script.revision
            for script in ScriptDirectory.from_config(migration_set.config()).walk_revisions()
        }
        if found is not None and found not in known:
            raise SchemaNotAtHead(
                f"the {migration_set.service} database is at revision {found}, which this"
                f" release does not know (a newer release migrated it): run that release"
            )
        state = "has no schema version" if found is None else f"is at revision {found}"
        raise SchemaNotAtHead(
            f"the {migration_set.service} database {state}, this release needs {head}:"
            f" run `mrm migrate {migration_set.service}` first"
        )


def migrate(engine: Engine, migration_set: MigrationSet) -> str:
    """Bring the database to the head revision (adopting a pre-migration one); returns what was
    done: ``"upgraded"``, ``"adopted"`` or ``"current"``. Safe to run from several processes."""
    with _ALEMBIC, _migration_lock(engine, migration_set.service):
        if current_revision(engine, migration_set) == migration_set.head():
            return "current"
        with engine.begin() as connection:
            tables = set(inspect(connection).get_table_names())
            adopted = migration_set.version_table not in tables and bool(
                tables & set(migration_set.metadata.tables)
            )
            config = migration_set.config(connection)
            if adopted:
                migration_set.adopt(connection)
                command.stamp(config, migration_set.baseline)
            command.upgrade(config, "head")
        return "adopted" if adopted else "upgraded"


def new_revision(migration_set: MigrationSet, *, message: str, scratch: Path) -> Path:
    """Write the next revision (numbered ``0002``, ``0003``, ...) from what the models declare
    beyond the head revision, found on a scratch SQLite database brought to head; returns its
    file. Review it (e.g. data steps, PostgreSQL specifics) before committing it."""
    from shared.sql import make_engine

    engine = make_engine(f"sqlite:///{scratch / f'{migration_set.service}-revision.db'}")
    try:
        migrate(engine, migration_set)
        script = ScriptDirectory.from_config(migration_set.config())
        number = len(list(script.walk_revisions())) + 1
        with _ALEMBIC, engine.begin() as connection:
            written = command.revision(
                migration_set.config(connection),
                message=message,
                autogenerate=True,
                rev_id=f"{number:04d}",
            )
    finally:
        engine.dispose()
    assert written is not None and not isinstance(written, list)
    return Path(written.path)


def differences(engine: Engine, migration_set: MigrationSet) -> list[object]:
    """What differs between the database and the service's models (empty: no drift)."""
    from alembic.autogenerate import compare_metadata

    with engine.connect() as connection:
        migration = MigrationContext.configure(
            connection,
            opts={
                "version_table": migration_set.version_table,
                "compare_type": True,
                "include_name": migration_set.owns,
                "include_object": _compared,
            },
        )
        return list(compare_metadata(migration, migration_set.metadata))


def _compared(
    item: object, _name: str | None, kind: str, reflected: bool, _compare_to: object
) -> bool:
    # PostgreSQL folds a unique constraint on exactly the primary key's columns into the key
    # (the inboxes declare one), so it is never reflected there: not a difference
    if kind == "unique_constraint" and not reflected and isinstance(item, UniqueConstraint):
        table = item.table
        if isinstance(table, Table) and set(item.columns.keys()) == set(
            table.primary_key.columns.keys()
        ):
            return False
    return True


@contextmanager
def _migration_lock(engine: Engine, service: str) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        key = zlib.crc32(f"mrm-migrate-{service}".encode())
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        return
    database = make_url(str(engine.url)).database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    lock_path = Path(f"{database}.migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


__all__ = [
    "MigrationSet",
    "SchemaNotAtHead",
    "current_revision",
    "differences",
    "migrate",
    "require_head",
    "run_env",
]
