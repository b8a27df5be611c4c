"""Log capture fixtures (imported by the observability conftests): Agora's logging as in
production for one test, everything put back afterwards."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog

from agora.observability.logging import configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


JsonLines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def json_logs(restore_logging: None) -> JsonLines:  # noqa: ARG001  # requested for its side effect
    """JSON logging as configured for production, its stdout handler writing to a buffer;
    returns a reader of the lines written since the last read."""
    configure_logging("posts", "DEBUG", "json")
    buffer = io.StringIO()
    stdout_handler = logging.getLogger().handlers[0]
    assert isinstance(stdout_handler, logging.StreamHandler)
    stdout_handler.setStream(buffer)

    def read() -> list[dict[str, Any]]:
        out = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return [orjson.loads(line) for line in out.splitlines()]

    return read


@pytest.fixture
def log_file(tmp_path: Path, restore_logging: None) -> Path:  # noqa: ARG001  # requested for its side effect
    path = tmp_path / "logs" / "agora.log"
    configure_logging("auth", "INFO", "console", log_file=path)
    return path
