"""Runs one service process on uvicorn (uvloop, httptools, wsproto; one worker)."""

from __future__ import annotations

import gc
import importlib
import signal
import sys
from pathlib import Path
from typing import Any

import uvicorn

from agora.config import ServiceName, Settings
from agora.http_protocol import header_deadline_protocol
from agora.observability import heap
from agora.observability.logging import configure_logging
from agora.runtime import ServiceApp
from agora.shutdown import UNCLEAN_EXIT_CODE, GracefulServer

STARTUP_FAILURE_EXIT_CODE = 3


def create_service_app(service: ServiceName, settings: Settings) -> ServiceApp[Any]:
    module = importlib.import_module(f"agora.services.{service}.app")
    app = module.create_app(settings)
    if not isinstance(app, ServiceApp):
        raise TypeError(f"agora.services.{service}.app.create_app built no ServiceApp")
    return app


def tune_collector(threshold: int) -> None:
    """Python collects its youngest generation every 700 net allocations: several passes per
    request on this path, each walking what the requests in flight hold. A higher threshold
    makes fewer, cheaper-per-request passes, and freezing what startup built (modules, the
    app, its schemas and routes) keeps every later full pass off objects that live as long as
    the process. Measured in docs/performance.md ("The garbage collector")."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(threshold, middle, oldest)


def serve(service: ServiceName, settings: Settings, *, host: str, port: int) -> None:
    configure_logging(
        service, settings.log_level, settings.effective_log_format, log_file=settings.log_file
    )
    settings.require_database_url()
    settings.require_redis_url()
    app = create_service_app(service, settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        # httptools, with the header deadline and size cap uvicorn lacks (agora.http_protocol).
        http=header_deadline_protocol(
            header_timeout_s=settings.request_header_timeout_s,
            max_header_bytes=settings.max_header_bytes,
        ),
        ws="wsproto",
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        # Above the gateway's idle timeout, so the gateway never reuses a connection the
        # server is closing (a classic source of intermittent 502s; docs/operations.md).
        timeout_keep_alive=settings.keep_alive_timeout_s,
        ws_max_size=settings.ws_max_message_bytes,
        ws_per_message_deflate=False,
    )
    server = GracefulServer(
        config,
        lifecycle=app.lifecycle,
        delay_s=settings.effective_shutdown_delay_s,
        drain_timeout_s=settings.shutdown_timeout_s,
    )
    # uvicorn re-raises the signal that stopped it once it has drained, so the process would
    # end "killed by SIGTERM"; with these handlers in place that re-raise is a no-op and a
    # clean drain exits 0, as supervisors and Kubernetes expect.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    heap.install(service, Path(settings.heap_snapshot_dir))
    tune_collector(settings.gc_threshold)
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE_EXIT_CODE)
    if not server.drained_cleanly:
        sys.exit(UNCLEAN_EXIT_CODE)
