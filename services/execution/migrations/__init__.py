"""Execution's schema migrations (Alembic revisions in ``versions/``; ``shared.migrations``)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from shared.migrations import MigrationSet


@cache
def migration_set() -> MigrationSet:
    """Execution's revisions over its metadata."""
    from services.execution import store

    return MigrationSet(
        service="execution",
        directory=Path(__file__).parent,
        metadata=store.Base.metadata,
        baseline="0001",
        adopt=store.adopt_legacy_schema,
    )
