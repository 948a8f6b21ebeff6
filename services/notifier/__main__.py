"""``python -m services.notifier``: run the notifier service."""

from __future__ import annotations

from services.notifier.app import create_app
from services.notifier.settings import NotifierSettings
from shared.logging import configure_logging
from shared.runtime import serve


def main() -> None:
    """Read settings from the environment, configure logging and serve."""
    settings = NotifierSettings()
    configure_logging(service="notifier", level=settings.log_level, json=settings.log_json)
    serve(
        create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level
    )


if __name__ == "__main__":
    main()
