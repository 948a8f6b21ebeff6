"""Revisions (one module each; Alembic reads them by path)."""
