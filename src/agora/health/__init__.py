"""Liveness and readiness: background dependency checks, probes that read their last result."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.asyncio import Redis

import agora
from agora.config import ServiceName, Settings
from agora.db import Database
from agora.health.checks import config_probe, postgres_probe, redis_probe
from agora.health.monitor import CheckState, HealthMonitor
from agora.health.routes import health_router
from agora.lifecycle import AnswerCutOffRequests, Lifecycle

__all__ = ["CheckState", "HealthMonitor", "health_router", "install_health", "running_checks"]


def install_health(app: FastAPI, service: ServiceName, settings: Settings) -> HealthMonitor:
    """Probe routes, the process's lifecycle and its health monitor (on ``app.state``), and
    the 503 for requests a drain cuts off. Call before the request-context middleware is
    added, so that middleware wraps this one."""
    lifecycle = Lifecycle()
    monitor = HealthMonitor(
        service=service,
        instance_id=settings.instance_id,
        version=agora.__version__,
        lifecycle=lifecycle,
        interval_s=settings.health_check_interval_s,
        timeout_s=settings.health_check_timeout_s,
    )
    app.state.lifecycle = lifecycle
    app.state.health = monitor
    app.include_router(health_router())
    app.add_middleware(AnswerCutOffRequests, lifecycle=lifecycle)
    return monitor


@asynccontextmanager
async def running_checks(
    app: FastAPI, service: ServiceName, settings: Settings, db: Database, redis: Redis
) -> AsyncIterator[None]:
    """The standard checks, running for as long as the app is. PostgreSQL is hard for every
    service; Redis is hard for realtime only (no fan-out without it): auth and posts fall back
    to PostgreSQL and report ``degraded``."""
    monitor: HealthMonitor = app.state.health
    monitor.add_check("postgres", postgres_probe(db, settings.require_database_url()), hard=True)
    monitor.add_check("redis", redis_probe(redis), hard=service == "realtime")
    monitor.add_check("config", config_probe(service, settings), hard=True)
    async with monitor.running():
        yield
