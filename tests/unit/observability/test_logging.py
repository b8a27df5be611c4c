"""Log lines: ECS field names, levels, trace correlation, the daily file sink, access sampling."""

from __future__ import annotations

import logging
import logging.handlers
import time
from pathlib import Path

import orjson
import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider

from agora.observability.logging import LOG_FILE_BACKUPS, configure_logging, flush_logs
from agora.observability.middleware import AccessLogPolicy
from tests.log_capture import JsonLines


def test_json_lines_use_ecs_field_names(json_logs: JsonLines) -> None:
    structlog.get_logger("agora.test").info("hello", **{"user.id": "u1"})
    logging.getLogger("uvicorn.error").info("from the %s", "stdlib")
    ours, stdlib = json_logs()
    assert ours["message"] == "hello"
    assert ours["log.level"] == "info"
    assert ours["log.logger"] == "agora.test"
    assert ours["service.name"] == "agora-posts"
    assert ours["user.id"] == "u1"
    assert ours["ecs.version"]
    assert ours["@timestamp"].endswith("Z")
    assert stdlib["message"] == "from the stdlib"
    assert stdlib["log.logger"] == "uvicorn.error"
    assert stdlib["service.name"] == "agora-posts"


@pytest.mark.usefixtures("restore_logging")
def test_levels_are_named_as_operators_write_them(json_logs: JsonLines) -> None:
    log = structlog.get_logger("agora.test")
    log.warning("w")
    log.critical("c")
    assert [line["log.level"] for line in json_logs()] == ["warn", "fatal"]
    configure_logging("posts", "WARN", "json")
    assert logging.getLogger().level == logging.WARNING
    configure_logging("posts", "FATAL", "json")
    assert logging.getLogger().level == logging.CRITICAL


def test_lines_inside_a_span_carry_its_trace_and_span_ids(json_logs: JsonLines) -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        structlog.get_logger("agora.test").info("inside")
        logging.getLogger("asyncpg").warning("inside too")
    structlog.get_logger("agora.test").info("outside")
    inside, inside_stdlib, outside = json_logs()
    context = span.get_span_context()
    for line in (inside, inside_stdlib):
        assert line["trace.id"] == format(context.trace_id, "032x")
        assert line["span.id"] == format(context.span_id, "016x")
    assert "trace.id" not in outside


def test_file_sink_rotates_daily_and_keeps_30_days(log_file: Path) -> None:
    handler = next(
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.handlers.TimedRotatingFileHandler)
    )
    assert (handler.when, handler.utc, handler.backupCount) == ("MIDNIGHT", True, 30)
    old_days = [f"2026-01-{day:02d}" for day in range(1, LOG_FILE_BACKUPS + 6)]
    for day in old_days:
        (log_file.parent / f"agora.log.{day}").write_text("old\n")
    structlog.get_logger("agora.test").info("before midnight", password="hunter2")
    handler.rolloverAt = int(time.time()) - 1  # midnight has passed: yesterday is rotated
    structlog.get_logger("agora.test").info("after midnight")
    flush_logs()
    backups = sorted(p.name for p in log_file.parent.iterdir() if p.name != "agora.log")
    assert len(backups) == LOG_FILE_BACKUPS
    assert f"agora.log.{old_days[0]}" not in backups  # the oldest went first
    rotated = [p for p in log_file.parent.iterdir() if "before midnight" in p.read_text()]
    assert len(rotated) == 1
    assert rotated[0] != log_file
    # The file is JSON for machines even when stdout is the console format; redacted too.
    line = orjson.loads(rotated[0].read_text().splitlines()[0])
    assert line["password"] == "[REDACTED]"
    assert orjson.loads(log_file.read_text())["message"] == "after midnight"


def test_access_log_sampling_keeps_errors_slow_and_traced_requests() -> None:
    policy = AccessLogPolicy.create(0.0, ["/api/v1/posts/feed"], slow_ms=500)
    hot = "/api/v1/posts/feed"
    assert not policy.should_log(hot, 200, 0.01, sampled=False)
    assert policy.should_log(hot, 404, 0.01, sampled=False)
    assert policy.should_log(hot, 503, 0.01, sampled=False)
    assert policy.should_log(hot, 200, 0.6, sampled=False)
    assert policy.should_log(hot, 200, 0.01, sampled=True)
    assert policy.should_log("/api/v1/posts", 201, 0.01, sampled=False)
    everything = AccessLogPolicy.create(1.0, [hot], slow_ms=500)
    assert everything.should_log(hot, 200, 0.01, sampled=False)
    tenth = AccessLogPolicy.create(0.1, [hot], slow_ms=500)
    logged = sum(tenth.should_log(hot, 200, 0.01, sampled=False) for _ in range(10_000))
    assert 700 < logged < 1300
