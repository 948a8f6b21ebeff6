"""Planning's schema migrations (Alembic revisions in ``versions/``; ``shared.migrations``)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from shared.migrations import MigrationSet


@cache
def migration_set() -> MigrationSet:
    """Planning's revisions over its metadata (every ``*_store`` module's tables)."""
    from services.planning import (  # noqa: F401  (their tables join Base.metadata)
        budget_store,
        discount_store,
        forecast_store,
        rule_store,
        sales_store,
        store,
    )

    return MigrationSet(
        service="planning",
        directory=Path(__file__).parent,
        metadata=store.Base.metadata,
        baseline="0001",
        adopt=store.adopt_legacy_schema,
    )
