"""structlog set-up: JSON lines (ECS field names) in production, readable console in development.

Standard-library loggers (uvicorn, asyncpg, alembic) are routed through the same processors,
so every line, whoever writes it, has the same shape and the request's context.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from structlog.types import EventDict, Processor

from agora.observability.context import request_id_var, user_id_var

_LEVELS = {"WARN": "WARNING", "FATAL": "CRITICAL"}


def _add_context(_: Any, __: str, event_dict: EventDict) -> EventDict:
    request_id = request_id_var.get()
    if request_id is not None:
        event_dict.setdefault("http.request.id", request_id)
    user_id = user_id_var.get()
    if user_id is not None:
        event_dict.setdefault("user.id", user_id)
    return event_dict


def _ecs_names(_: Any, __: str, event_dict: EventDict) -> EventDict:
    event_dict["message"] = event_dict.pop("event", "")
    event_dict["log.level"] = event_dict.pop("level", "info")
    if "timestamp" in event_dict:
        event_dict["@timestamp"] = event_dict.pop("timestamp")
    logger_name = event_dict.pop("logger", None)
    if logger_name:
        event_dict["log.logger"] = logger_name
    return event_dict


def configure_logging(service: str, level: str = "INFO", fmt: str = "console") -> None:
    level_name = _LEVELS.get(level.upper(), level.upper())

    def _service(_: Any, __: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service.name", f"agora-{service}")
        return event_dict

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_context,
        _service,
    ]
    if fmt == "json":
        renderer: Processor = structlog.processors.JSONRenderer()
        final: list[Processor] = [
            structlog.processors.format_exc_info,
            _ecs_names,
            renderer,
        ]
    else:
        final = [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_name)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
