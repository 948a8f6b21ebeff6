"""The services' schema migrations on SQLite and PostgreSQL: the head revision is exactly what
the models declare (no drift), databases made by ``create_all`` before migrations are adopted,
a service refuses a database that is not at head, and three ``mrm migrate`` processes at once on
one empty database all succeed."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    inspect,
    select,
    text,
)

from mrm.migrate import SQL_SERVICES, settings_and_migrations
from services.execution import store as execution_store
from services.planning.app import create_app as planning_app
from services.planning.settings import PlanningSettings
from shared.migrations import (
    MigrationSet,
    SchemaNotAtHead,
    current_revision,
    differences,
    migrate,
    new_revision,
    require_head,
)
from shared.sql import make_engine

ROOT = Path(__file__).resolve().parents[3]


def migrations_of(service: str) -> MigrationSet:
    return settings_and_migrations(service)[1]


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("service", SQL_SERVICES)
def test_the_head_revision_is_exactly_what_the_models_declare(engine: Engine, service: str) -> None:
    migrations = migrations_of(service)
    assert migrate(engine, migrations) == "upgraded"
    assert current_revision(engine, migrations) == migrations.head() == "0001"
    assert differences(engine, migrations) == []
    tables = set(inspect(engine).get_table_names())
    assert set(migrations.metadata.tables) | {f"{service}_alembic_version"} <= tables
    assert migrate(engine, migrations) == "current"


def test_a_model_the_migrations_do_not_know_is_reported_as_drift(engine: Engine) -> None:
    migrations = migrations_of("notifier")
    migrate(engine, migrations)
    with engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_notifier_parked_causes_waits"))
    assert [diff[0] for diff in differences(engine, migrations)] == ["add_index"]  # type: ignore[index]


def test_the_services_share_a_database_without_sharing_a_revision(engine: Engine) -> None:
    for service in SQL_SERVICES:
        migrate(engine, migrations_of(service))
    for service in SQL_SERVICES:
        migrations = migrations_of(service)
        assert current_revision(engine, migrations) == "0001"
        assert differences(engine, migrations) == []


def test_a_database_made_before_migrations_is_adopted_and_keeps_its_rows(engine: Engine) -> None:
    """A create_all database of an older release: a nullable column added since is missing,
    spend totals did not exist yet; adoption adds the column, fills the totals from the spend
    and stamps the baseline."""
    migrations = migrations_of("execution")
    metadata = migrations.metadata
    legacy = [table for name, table in metadata.tables.items() if name != "execution_spend_totals"]
    metadata.create_all(engine, tables=legacy)
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE execution_stages DROP COLUMN overdue_for"))
        connection.execute(
            insert(execution_store.Spend),
            [
                {
                    "event_id": str(uuid.uuid4()),
                    "campaign_id": "c-1",
                    "channel": "search",
                    "amount": amount,
                    "currency": "USD",
                    "occurred_at": dt.datetime(2027, 3, 1, tzinfo=dt.UTC),
                }
                for amount in (Decimal("10.50"), Decimal("0.25"))
            ],
        )

    assert migrate(engine, migrations) == "adopted"

    assert current_revision(engine, migrations) == "0001"
    assert differences(engine, migrations) == []
    with execution_store.unit_of_work(engine=engine) as session:
        assert execution_store.spend_totals(session=session, campaign_ids=["c-1"]) == {
            "c-1": {"USD": Decimal("10.75")}
        }
        assert len(session.scalars(select(execution_store.Spend)).all()) == 2


def test_a_planning_database_before_migrations_gains_its_newer_columns(engine: Engine) -> None:
    migrations = migrations_of("planning")
    migrations.metadata.create_all(engine)
    with engine.begin() as connection:  # rules before thresholds per recipient
        connection.execute(
            text("ALTER TABLE planning_reallocation_rules DROP COLUMN recipient_threshold")
        )

    assert migrate(engine, migrations) == "adopted"

    assert differences(engine, migrations) == []
    assert migrate(engine, migrations) == "current"


def test_a_service_refuses_a_database_that_is_not_at_head(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    migrations = migrations_of("planning")
    with pytest.raises(SchemaNotAtHead, match="run `mrm migrate planning` first"):
        require_head(engine, migrations)
    settings = PlanningSettings(
        kafka_bootstrap="127.0.0.1:1",
        database_url=database_url,
        data_dir=tmp_path,
        database_migrate_on_start=False,
    )
    with (
        pytest.raises(SchemaNotAtHead, match="has no schema version"),
        TestClient(planning_app(settings)),
    ):
        pass
    assert inspect(engine).get_table_names() == []  # nothing was created

    migrate(engine, migrations)
    require_head(engine, migrations)
    with engine.begin() as connection:  # as if a newer release had migrated it
        connection.execute(text("UPDATE planning_alembic_version SET version_num = '0099'"))
    with pytest.raises(SchemaNotAtHead, match="revision 0099, which this release does not know"):
        require_head(engine, migrations)


def test_migrations_in_threads_of_one_process_at_once_all_succeed(database_url: str) -> None:
    """Services started side by side in one process (each lifespan migrating in a thread):
    two threads per service, each with its own engine, on one empty database."""
    jobs = [service for service in SQL_SERVICES for _ in range(2)]
    engines = [make_engine(database_url) for _ in jobs]
    try:
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            outcomes = list(
                pool.map(
                    lambda job: migrate(job[0], migrations_of(job[1])),
                    zip(engines, jobs, strict=True),
                )
            )
        assert sorted(outcomes) == ["current"] * 3 + ["upgraded"] * 3
        for service in SQL_SERVICES:
            assert differences(engines[0], migrations_of(service)) == []
    finally:
        for engine in engines:
            engine.dispose()


@pytest.fixture
def empty_postgres_database() -> Iterator[str]:
    """A throwaway PostgreSQL database (advisory locks are per database)."""
    base = os.environ.get("MRM_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("MRM_TEST_POSTGRES_URL is not set")
    name = f"mrm_migrate_{uuid.uuid4().hex[:12]}"
    admin = create_engine(
        base.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield base.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def run_three_migrations_at_once(env: dict[str, str]) -> list[subprocess.CompletedProcess[str]]:
    # the SQL stores, as `mrm up` migrates them (the embedded warehouse, a chDB path, is opened
    # by one process at a time; its concurrent migrations are in test_warehouse_migrations)
    command = [sys.executable, "-m", "mrm.cli", "migrate", *SQL_SERVICES]
    children = [
        subprocess.Popen(
            command,
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = []
    for child in children:
        out, err = child.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(command, child.returncode, out, err))
    return results


@pytest.mark.postgres
def test_three_migrations_at_once_on_an_empty_postgresql_all_succeed(
    empty_postgres_database: str, tmp_path: Path
) -> None:
    results = run_three_migrations_at_once(
        {"MRM_DATABASE_URL": empty_postgres_database, "MRM_DATA_DIR": str(tmp_path)}
    )
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr[-2000:] for r in results]
    outcomes = sorted(line for r in results for line in r.stdout.splitlines())
    # each service's schema was made once; the two others found it at head
    assert outcomes == sorted(
        [f"{s}: upgraded (at revision 0001)" for s in SQL_SERVICES]
        + [f"{s}: current (at revision 0001)" for s in SQL_SERVICES] * 2
    )
    engine = make_engine(empty_postgres_database)
    try:
        for service in SQL_SERVICES:
            migrations = migrations_of(service)
            assert current_revision(engine, migrations) == "0001"
            assert differences(engine, migrations) == []
    finally:
        engine.dispose()


def test_three_migrations_at_once_on_empty_sqlite_files_all_succeed(tmp_path: Path) -> None:
    results = run_three_migrations_at_once({"MRM_DATA_DIR": str(tmp_path)})
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr[-2000:] for r in results]
    upgraded = [line for r in results for line in r.stdout.splitlines() if "upgraded" in line]
    assert sorted(upgraded) == sorted(f"{s}: upgraded (at revision 0001)" for s in SQL_SERVICES)
    for service in SQL_SERVICES:
        engine = make_engine(f"sqlite:///{tmp_path / f'{service}.db'}")
        try:
            assert differences(engine, migrations_of(service)) == []
        finally:
            engine.dispose()


@pytest.mark.parametrize("service", SQL_SERVICES)
def test_the_migrations_ship_in_the_installed_package(service: str) -> None:
    """The image installs a wheel: its package discovery takes only directories with an
    ``__init__.py``, so the revisions' directory must be one."""
    directory = migrations_of(service).directory
    assert (directory / "__init__.py").is_file() and (directory / "env.py").is_file()
    assert (directory / "versions" / "__init__.py").is_file()
    assert sorted(p.name for p in (directory / "versions").glob("0*.py")) == ["0001_baseline.py"]


def test_a_new_revision_is_written_from_the_models_and_then_applies(tmp_path: Path) -> None:
    """``mrm migrate <service> --revision``: on a copy of a service's migration directory with
    no revisions yet, a model with one table gets a first revision creating it, and after
    it the database matches the models."""
    source = migrations_of("notifier").directory
    directory = tmp_path / "migrations"
    (directory / "versions").mkdir(parents=True)
    for name in ("env.py", "script.py.mako"):
        (directory / name).write_text((source / name).read_text())
    metadata = MetaData()
    Table(
        "kit_things",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("name", String(20), nullable=False, index=True),
    )
    kit = MigrationSet(service="kit", directory=directory, metadata=metadata, baseline="0001")
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    written = new_revision(kit, message="things", scratch=scratch)

    assert written.parent == directory / "versions" and written.name.startswith("0001_")
    assert "op.create_table(" in written.read_text() and "kit_things" in written.read_text()
    engine = make_engine(f"sqlite:///{tmp_path / 'kit.db'}")
    try:
        assert migrate(engine, kit) == "upgraded"
        assert current_revision(engine, kit) == "0001"
        assert differences(engine, kit) == []
        assert {i["name"] for i in inspect(engine).get_indexes("kit_things")} == {
            "ix_kit_things_name"
        }
    finally:
        engine.dispose()
