"""``mrm migrate``: brings the three SQL databases (or those named) to head and says what it
did. In this process only the SQL stores: chDB opens one data path per process, so ``all`` with
measurement's embedded warehouse is run as a command of its own in
``tests/measurement/integration/test_warehouse_migrations.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from mrm.cli import main
from mrm.migrate import SQL_SERVICES, settings_and_migrations
from shared.migrations import current_revision, require_head
from shared.sql import make_engine


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default stores (SQLite files in the data directory), nothing else configured."""
    monkeypatch.setenv("MRM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MRM_DATABASE_URL", raising=False)
    for service in SQL_SERVICES:
        monkeypatch.delenv(f"MRM_{service.upper()}_DATABASE_URL", raising=False)
    return tmp_path


def revision_of(data_dir: Path, service: str) -> str | None:
    engine = make_engine(f"sqlite:///{data_dir / f'{service}.db'}")
    try:
        return current_revision(engine, settings_and_migrations(service)[1])
    finally:
        engine.dispose()


def test_migrate_the_sql_stores_then_again(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "notifier", "planning", "execution", "planning"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "notifier: upgraded (at revision 0001)",
        "planning: upgraded (at revision 0001)",
        "execution: upgraded (at revision 0001)",
    ]
    assert main(["migrate", *SQL_SERVICES]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{service}: current (at revision 0001)" for service in SQL_SERVICES
    ]
    for service in SQL_SERVICES:
        engine = make_engine(f"sqlite:///{data_dir / f'{service}.db'}")
        try:
            require_head(engine, settings_and_migrations(service)[1])
        finally:
            engine.dispose()


def test_migrate_one_service_leaves_the_others_alone(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "execution"]) == 0
    assert capsys.readouterr().out == "execution: upgraded (at revision 0001)\n"
    assert revision_of(data_dir, "execution") == "0001"
    assert not (data_dir / "planning.db").exists() and not (data_dir / "notifier.db").exists()


def test_all_is_the_default_and_means_the_four(monkeypatch: pytest.MonkeyPatch) -> None:
    from mrm import migrate as migrate_module
    from mrm.cli import build_parser

    assert build_parser().parse_args(["migrate"]).service == "all"
    done: list[str] = []
    monkeypatch.setattr(migrate_module, "migrate_services", lambda services: done.extend(services))
    monkeypatch.setattr(migrate_module, "migrate_warehouse", lambda: done.append("warehouse"))
    assert main(["migrate"]) == 0
    assert done == [*SQL_SERVICES, "warehouse"]
    done.clear()
    assert main(["migrate", "measurement"]) == 0
    assert done == ["warehouse"]


@pytest.mark.parametrize("services", [["all"], ["planning", "execution"], ["measurement"]])
def test_a_new_revision_needs_one_sql_service(
    data_dir: Path, capsys: pytest.CaptureFixture[str], services: list[str]
) -> None:
    assert main(["migrate", *services, "--revision", "add x"]) == 2
    assert "--revision writes an Alembic revision for planning" in capsys.readouterr().err


def test_an_unknown_service_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["migrate", "planning", "billing"])
    assert exit_.value.code == 2
    assert "invalid choice: 'billing'" in capsys.readouterr().err
