"""The standard checks: PostgreSQL, Redis, and the configuration a service cannot work without."""

from __future__ import annotations

import asyncpg
from redis.asyncio import Redis

from agora.config import ServiceName, Settings
from agora.db import Database
from agora.db.pool import asyncpg_dsn
from agora.health.monitor import Probe


def postgres_probe(db: Database, url: str) -> Probe:
    """``SELECT 1`` through the pool. When every pooled connection is busy, a direct connection
    instead: a saturated pool means load, not an unreachable database, and reporting it as
    "failing" would pull a busy instance out of the load balancer and overload the others."""
    dsn = asyncpg_dsn(url)

    async def probe() -> None:
        pool = db.pool
        if pool.get_idle_size() == 0 and pool.get_size() >= pool.get_max_size():
            direct = await asyncpg.connect(dsn)
            try:
                await direct.fetchval("SELECT 1")
            finally:
                await direct.close(timeout=1.0)
        else:
            async with db.connection() as conn:
                await conn.fetchval("SELECT 1")

    return probe


def redis_probe(redis: Redis) -> Probe:
    async def probe() -> None:
        await redis.ping()

    return probe


def config_probe(service: ServiceName, settings: Settings) -> Probe:
    """What this service cannot serve without; start-up refuses most of it already, so this
    is the operator-visible statement that nothing is missing."""
    required = {"AGORA_DATABASE_URL": settings.database_url, "AGORA_REDIS_URL": settings.redis_url}
    if service != "auth":
        required["AGORA_AUTH_JWKS_URL"] = settings.auth_jwks_url

    async def probe() -> None:
        missing = [name for name, value in required.items() if not value]
        if missing:
            raise LookupError(f"not configured: {', '.join(missing)}")

    return probe
