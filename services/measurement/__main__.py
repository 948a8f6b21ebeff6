"""``python -m services.measurement``: run the measurement service."""

from services.measurement.app import create_app
from services.measurement.settings import MeasurementSettings
from shared.logging import configure_logging
from shared.runtime import serve

settings = MeasurementSettings()
configure_logging(service="measurement", level=settings.log_level, json=settings.log_json)
serve(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level)
