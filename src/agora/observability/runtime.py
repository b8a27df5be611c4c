"""What a service's lifespan starts and stops for observability, in one place."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI

from agora import __version__
from agora.config import Settings
from agora.observability import route_templates, tracing
from agora.observability.activity import active_users
from agora.observability.exposition import preinitialise
from agora.observability.logging import flush_logs
from agora.observability.metrics import BUILD_INFO
from agora.redis.access import RedisAccess


@asynccontextmanager
async def observability(
    app: FastAPI, service: str, settings: Settings, redis: RedisAccess
) -> AsyncIterator[None]:
    """Metrics at zero, tracing (after any fork: this runs in the serving process), the
    active-users flusher; at exit, spans exported and logs flushed."""
    preinitialise(service, app.routes)
    BUILD_INFO.labels(__version__, settings.build_revision).set(1)
    route_templates.prepare(app, app.routes)
    traced = tracing.start(
        service, settings.otlp_endpoint, settings.effective_trace_sample_ratio, redis=redis.client
    )
    flusher = asyncio.create_task(
        active_users.run(redis, settings.active_users_flush_s), name="active-users"
    )
    try:
        yield
    finally:
        flusher.cancel()
        with suppress(asyncio.CancelledError):
            await flusher
        if traced:
            tracing.stop(redis=redis.client)
        flush_logs()
