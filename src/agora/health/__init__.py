"""Liveness and readiness: background dependency checks, probes that read their last result."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis

import agora
from agora.config import ServiceName, Settings
from agora.db import Database
from agora.health.checks import config_probe, postgres_probe, redis_probe
from agora.health.monitor import CheckState, HealthMonitor
from agora.health.routes import health_router
from agora.lifecycle import Lifecycle

__all__ = ["CheckState", "HealthMonitor", "health_router", "new_monitor", "running_checks"]


def new_monitor(service: ServiceName, settings: Settings) -> HealthMonitor:
    """The process's health monitor and, as ``monitor.lifecycle``, its lifecycle. The probe
    routes (``health_router``) answer from it; the drain's 503s come from
    ``AnswerCutOffRequests`` in the middleware stack (``agora.app``)."""
    return HealthMonitor(
        service=service,
        instance_id=settings.instance_id,
        version=agora.__version__,
        lifecycle=Lifecycle(),
        interval_s=settings.health_check_interval_s,
        timeout_s=settings.health_check_timeout_s,
    )


@asynccontextmanager
async def running_checks(
    monitor: HealthMonitor, service: ServiceName, settings: Settings, db: Database, redis: Redis
) -> AsyncIterator[None]:
    """The standard checks, running for as long as the app is. PostgreSQL is hard for every
    service; Redis is hard for realtime only (no fan-out without it): auth and posts fall back
    to PostgreSQL and report ``degraded``."""
    monitor.add_check("postgres", postgres_probe(db, settings.require_database_url()), hard=True)
    monitor.add_check("redis", redis_probe(redis), hard=service == "realtime")
    monitor.add_check("config", config_probe(service, settings), hard=True)
    async with monitor.running():
        yield
