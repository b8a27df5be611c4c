"""structlog set-up: JSON lines with Elastic Common Schema field names in production, a readable
console format in development.

Standard-library loggers (uvicorn, asyncpg, alembic) go through the same processors, so every
line, whoever writes it, has the same shape, the request's context (request id, trace and span
ids, user id, method, route template) and the same PII redaction. Output is stdout (what
containers collect); ``AGORA_LOG_FILE`` adds a file rotated at midnight UTC, 30 days kept.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path
from typing import Any

import orjson
import structlog
from opentelemetry import trace
from structlog.types import EventDict, Processor

from agora.observability.context import request_id_var, request_scope_var, user_id_var
from agora.observability.redaction import redact_processor

ECS_VERSION = "8.11.0"
LOG_FILE_BACKUPS = 30
# Operators may write WARN and FATAL (the level names); the stdlib says WARNING/CRITICAL.
_LEVELS = {"WARN": "WARNING", "FATAL": "CRITICAL"}
_LEVEL_NAMES = {"warning": "warn", "critical": "fatal", "exception": "error"}


def _add_context(_: Any, __: str, event_dict: EventDict) -> EventDict:
    request_id = request_id_var.get()
    if request_id is not None:
        event_dict.setdefault("http.request.id", request_id)
    user_id = user_id_var.get()
    if user_id is not None:
        event_dict.setdefault("user.id", user_id)
    scope = request_scope_var.get()
    if scope is not None:
        event_dict.setdefault("http.request.method", scope.get("method", "GET"))
        route = getattr(scope.get("route"), "path", None)
        if isinstance(route, str):
            event_dict.setdefault("http.route", route)
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace.id"] = format(context.trace_id, "032x")
        event_dict["span.id"] = format(context.span_id, "016x")
    return event_dict


def _ecs_names(_: Any, __: str, event_dict: EventDict) -> EventDict:
    event_dict["message"] = event_dict.pop("event", "")
    level = event_dict.pop("level", "info")
    event_dict["log.level"] = _LEVEL_NAMES.get(level, level)
    if "timestamp" in event_dict:
        event_dict["@timestamp"] = event_dict.pop("timestamp")
    logger_name = event_dict.pop("logger", None)
    if logger_name:
        event_dict["log.logger"] = logger_name
    stack = event_dict.pop("exception", None)
    if stack:
        event_dict["error.stack_trace"] = stack
    event_dict["ecs.version"] = ECS_VERSION
    return event_dict


def _dumps(obj: Any, **_: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


def configure_logging(
    service: str,
    level: str = "INFO",
    fmt: str = "console",
    *,
    log_file: str | Path | None = None,
) -> None:
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
    ]
    # Exceptions become text first, so redaction sees the traceback too. The service name is
    # added here, in the handler, not in structlog's chain (loggers cache that chain).
    tail: list[Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        _service,
        structlog.processors.format_exc_info,
        redact_processor,
    ]
    json_formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[*tail, _ecs_names, structlog.processors.JSONRenderer(serializer=_dumps)],
    )
    if fmt == "json":
        stdout_formatter = json_formatter
    else:
        stdout_formatter = structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[*tail, structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())],
        )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    stdout = logging.StreamHandler(sys.stdout)
    stdout.setFormatter(stdout_formatter)
    handlers: list[logging.Handler] = [stdout]
    if log_file is not None:
        # The file is for machines (Filebeat): always JSON, whatever stdout shows.
        handlers.append(file_handler(Path(log_file), json_formatter))
    root = logging.getLogger()
    for old in root.handlers:
        old.close()
    root.handlers[:] = handlers
    root.setLevel(level_name)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True


def file_handler(
    path: Path, formatter: logging.Formatter
) -> logging.handlers.TimedRotatingFileHandler:
    """Rotated at midnight UTC into ``<name>.YYYY-MM-DD``; files older than 30 days deleted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.TimedRotatingFileHandler(
        path, when="midnight", backupCount=LOG_FILE_BACKUPS, utc=True, encoding="utf-8"
    )
    handler.setFormatter(formatter)
    return handler


def flush_logs() -> None:
    """Push out what handlers buffer (called at shutdown, before the process exits)."""
    for handler in logging.getLogger().handlers:
        handler.flush()


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
