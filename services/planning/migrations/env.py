"""Alembic's entry point for the planning service's revisions (see ``shared.migrations``)."""

from shared.migrations import run_env

run_env()
