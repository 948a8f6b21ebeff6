"""``mrm migrate``: bring the databases of planning, execution and the notifier to the head
revision of their migrations (``shared.migrations``). ``mrm up`` runs it before it starts the
services; in production it runs once per release (e.g. a Kubernetes Job) before the new
replicas, which refuse to start on a database that is not at head."""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from shared.migrations import MigrationSet, migrate, new_revision
from shared.sql import make_engine
from shared.sql_service import SqlStoreSettings

SQL_SERVICES = ("planning", "execution", "notifier")
"""The services that own a SQL store, in the order they are migrated."""

_SETTINGS = {
    "planning": ("services.planning.settings", "PlanningSettings"),
    "execution": ("services.execution.settings", "ExecutionSettings"),
    "notifier": ("services.notifier.settings", "NotifierSettings"),
}


def settings_and_migrations(
    service: str, *, data_dir: Path | None = None
) -> tuple[SqlStoreSettings, MigrationSet]:
    """The service's settings (from the environment) and its migrations."""
    module, name = _SETTINGS[service]
    settings_class: type[SqlStoreSettings] = getattr(importlib.import_module(module), name)
    settings = settings_class() if data_dir is None else settings_class(data_dir=data_dir)
    migrations = importlib.import_module(f"services.{service}.migrations").migration_set()
    return settings, migrations


def migrate_services(
    services: Iterable[str],
    *,
    data_dir: Path | None = None,
    echo: Callable[[str], object] = print,
) -> dict[str, str]:
    """Migrate each service's database to head; returns what was done per service
    (``upgraded``, ``adopted`` or ``current``)."""
    done = {}
    for service in services:
        settings, migrations = settings_and_migrations(service, data_dir=data_dir)
        engine = make_engine(settings.database_url, pool=settings.pool_options())
        try:
            done[service] = migrate(engine, migrations)
        finally:
            engine.dispose()
        echo(f"{service}: {done[service]} (at revision {migrations.head()})")
    return done


def write_revision(service: str, *, message: str) -> Path:
    """Write the service's next revision from its models (``mrm migrate <service>
    --revision MESSAGE``); returns the new file."""
    _, migrations = settings_and_migrations(service)
    with tempfile.TemporaryDirectory() as scratch:
        return new_revision(migrations, message=message, scratch=Path(scratch))
