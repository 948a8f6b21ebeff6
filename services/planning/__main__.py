"""``python -m services.planning``: run the planning service."""

from services.planning.app import create_app
from services.planning.settings import PlanningSettings
from shared.logging import configure_logging
from shared.runtime import serve

settings = PlanningSettings()
configure_logging(service="planning", level=settings.log_level, json=settings.log_json)
serve(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level)
