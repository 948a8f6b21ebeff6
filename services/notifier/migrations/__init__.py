"""The notifier's schema migrations (Alembic revisions in ``versions/``;
``shared.migrations``)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from shared.migrations import MigrationSet


@cache
def migration_set() -> MigrationSet:
    """The notifier's revisions over its metadata."""
    from services.notifier import store

    return MigrationSet(
        service="notifier",
        directory=Path(__file__).parent,
        metadata=store.Base.metadata,
        baseline="0001",
        adopt=store.adopt_legacy_schema,
    )
