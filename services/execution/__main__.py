"""``python -m services.execution``: run the execution service."""

from __future__ import annotations

from services.execution.app import create_app
from services.execution.settings import ExecutionSettings
from shared.logging import configure_logging
from shared.runtime import serve


def main() -> None:
    """Read settings from the environment and serve until stopped."""
    settings = ExecutionSettings()
    configure_logging(service="execution", level=settings.log_level, json=settings.log_json)
    serve(
        create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level
    )


if __name__ == "__main__":
    main()
