"""Builds a service's :class:`Database` from the settings (pool knobs, replicas, breaker)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agora.config import Settings
from agora.db.pool import Database
from agora.db.routing import RecentWriters

if TYPE_CHECKING:
    from agora.flags.faults import FaultSwitch
    from agora.redis.access import RedisAccess
    from agora.resilience.registry import Breakers


def database_from_settings(
    settings: Settings,
    *,
    application_name: str,
    breakers: Breakers,
    redis: RedisAccess,
    faults: FaultSwitch | None = None,
) -> Database:
    return Database(
        settings.require_database_url(),
        replica_urls=settings.database_replica_urls,
        breaker=breakers.postgres,
        writers=RecentWriters(redis, window_s=settings.db_read_your_writes_s),
        retry_attempts=settings.db_retry_attempts,
        replica_cooldown_s=settings.db_replica_cooldown_s,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        max_lifetime_s=settings.db_pool_max_lifetime_s,
        max_idle_s=settings.db_pool_max_idle_s,
        command_timeout_s=settings.db_command_timeout_s,
        acquire_timeout_s=settings.db_acquire_timeout_s,
        health_check_after_idle_s=settings.db_health_check_after_idle_s,
        leak_threshold_s=settings.db_leak_threshold_s,
        application_name=application_name,
        faults=faults,
    )
