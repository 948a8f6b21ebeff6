"""structlog set up once per process: JSON lines when not on a terminal, console otherwise.

Standard-library records (uvicorn's access and error logs, aiokafka, SQLAlchemy) go through
the same processors as structlog's own lines, so with JSON on every line of a service is one
JSON object carrying the same context: ``service``, and while a request is handled its
``request_id`` (bound by ``shared.http_context``), while a message is handled its
``event_id``. uvicorn's access log is on only with JSON (``access_logging``), its fields split
out (client, method, path, status)."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_state = {"json": False}
_QUIET = ("aiokafka", "kafka", "faststream")


def access_logging() -> bool:
    """Whether uvicorn should write its access log (JSON logging is on)."""
    return _state["json"]


def _access_fields(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """uvicorn's access record (``client - "METHOD path HTTP/v" status``) as fields."""
    args = event_dict.pop("positional_args", None)  # already in the message of the others
    record = event_dict.get("_record")
    if record is not None and record.name == "uvicorn.access" and len(args or ()) == 5:
        client, method, path, version, status = args
        event_dict.update(
            event="http_access",
            client=client,
            method=method,
            path=path,
            http_version=version,
            status=status,
        )
    return event_dict


def configure_logging(*, service: str, level: str = "INFO", json: bool | None = None) -> None:
    """Configure structlog and stdlib logging for ``service``."""
    use_json = json if json is not None else not sys.stderr.isatty()
    _state["json"] = use_json
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    processors: list[structlog.types.Processor] = [
        *shared,
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    handler = logging.StreamHandler(sys.stderr)
    if use_json:
        handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, _access_fields],
                pass_foreign_args=True,
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    renderer,
                ],
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's loggers write through the root handler (one format for every line)
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    for noisy in _QUIET:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.INFO if use_json else logging.WARNING)
