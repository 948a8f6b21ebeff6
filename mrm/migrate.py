"""``mrm migrate``: bring the databases of planning, execution and the notifier to the head
revision of their migrations (``shared.migrations``), and measurement's ClickHouse warehouse to
its last migration (``services.measurement.warehouse.schema``). ``mrm up`` runs the SQL part
before it starts the services; in production it runs once per release (e.g. a Kubernetes Job)
before the new replicas: the SQL services refuse to start on a database that is not at head,
and measurement, which applies its own migrations at start as well (idempotently, once per
cluster under a claim), then finds nothing left to do."""

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

WAREHOUSE_SERVICE = "measurement"
"""The service that owns the ClickHouse warehouse."""

ALL_SERVICES = (*SQL_SERVICES, WAREHOUSE_SERVICE)
"""What ``mrm migrate all`` migrates, in order."""

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


def migrate_warehouse(
    *, data_dir: Path | None = None, echo: Callable[[str], object] = print
) -> str:
    """Apply measurement's ClickHouse migrations not yet applied (``MRM_CLICKHOUSE_URL``,
    ``_DATABASE``, ``_CLUSTER`` as the service reads them); returns ``upgraded`` or
    ``current``. chDB opens one data path per process: for the embedded ``chdb://`` warehouse
    run it while measurement is stopped."""
    from clickhouse_connect.driver.exceptions import ProgrammingError

    from services.measurement.settings import MeasurementSettings
    from services.measurement.warehouse import connect
    from services.measurement.warehouse import migrate as migrate_schema
    from services.measurement.warehouse.schema import MIGRATIONS

    settings = MeasurementSettings() if data_dir is None else MeasurementSettings(data_dir=data_dir)
    try:
        client = connect(settings.clickhouse_url, **settings.clickhouse_options())
    except ProgrammingError as error:
        if "Unable to open the chdb engine" not in str(error):
            raise
        raise RuntimeError(
            f"{error} -- is the embedded warehouse open in another process (a running "
            "measurement service or `mrm up`)? It applies its migrations itself when it starts"
        ) from error
    try:
        applied = migrate_schema(
            client, database=settings.clickhouse_database, cluster=settings.clickhouse_cluster
        )
    finally:
        client.close()
    head = MIGRATIONS[-1][0]
    done = "upgraded" if applied else "current"
    where = f" on cluster {settings.clickhouse_cluster}" if settings.clickhouse_cluster else ""
    echo(f"{WAREHOUSE_SERVICE}: {done}{where} (at migration {head}; applied {len(applied)})")
    return done


def write_revision(service: str, *, message: str) -> Path:
    """Write the service's next revision from its models (``mrm migrate <service>
    --revision MESSAGE``); returns the new file."""
    _, migrations = settings_and_migrations(service)
    with tempfile.TemporaryDirectory() as scratch:
        return new_revision(migrations, message=message, scratch=Path(scratch))
