"""One redis-py asyncio client per process, standalone or Sentinel-discovered, and the
process's ``RedisAccess`` around it.

Short socket timeouts and a bounded pool so a dead Redis costs milliseconds, not a hung
request (redis-py #2995); retries on connection errors so a Sentinel failover is followed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelManagedConnection
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agora.config import Settings
from agora.flags.faults import FaultSwitch, redis_connection_class
from agora.redis.access import RedisAccess
from agora.resilience.breaker import CircuitBreaker


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    hosts: list[tuple[str, int]]
    service_name: str
    db: int


def parse_sentinel_url(url: str) -> SentinelTarget:
    """``redis+sentinel://host:port,host:port/service_name/db``."""
    parts = urlsplit(url)
    hosts: list[tuple[str, int]] = []
    for item in parts.netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = item.rpartition(":")
        hosts.append((host or item, int(port) if host else 26379))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError("a redis+sentinel URL needs a service name: .../service_name/db")
    return SentinelTarget(
        hosts=hosts, service_name=path[0], db=int(path[1]) if len(path) > 1 else 0
    )


class SentinelRedis(Redis):
    """The master's client; closing it also closes the connections to the sentinels."""

    sentinels: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinels is not None:
            await self.sentinels.aclose()


class _ClientOptions(TypedDict):
    socket_timeout: float
    socket_connect_timeout: float
    health_check_interval: int
    retry: Retry
    retry_on_error: list[type[Exception]]
    max_connections: int


def _connection_class(url: str, faults: FaultSwitch | None) -> dict[str, Any]:
    """With the fault switch (agora.flags.faults), the URL scheme's connection class with the
    switch in front of every command; without it, redis-py's own choice."""
    if faults is None:
        return {}
    base: type[Any] = Connection
    if url.startswith("redis+sentinel://"):
        base = SentinelManagedConnection
    elif url.startswith("rediss://"):
        base = SSLConnection
    elif url.startswith("unix://"):
        base = UnixDomainSocketConnection
    return {"connection_class": redis_connection_class(base, faults)}


def create_redis(
    url: str,
    *,
    socket_timeout_s: float = 0.5,
    max_connections: int = 200,
    faults: FaultSwitch | None = None,
) -> Redis:
    options = _ClientOptions(
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s,
        health_check_interval=15,
        retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.2), retries=2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError, ReadOnlyError],
        max_connections=max_connections,
    )
    if url.startswith("redis+sentinel://"):
        target = parse_sentinel_url(url)
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            target.hosts,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s,
        )
        client: SentinelRedis = sentinel.master_for(
            target.service_name,
            redis_class=SentinelRedis,
            db=target.db,
            **options,
            **_connection_class(url, faults),
        )
        client.sentinels = sentinel
        return client
    return Redis.from_url(url, **options, **_connection_class(url, faults))


def redis_access(
    settings: Settings, breaker: CircuitBreaker, faults: FaultSwitch | None = None
) -> RedisAccess:
    """The process's one way to Redis: the client, the ``redis`` breaker, the timeouts."""
    client = create_redis(
        settings.require_redis_url(),
        socket_timeout_s=settings.redis_socket_timeout_s,
        max_connections=settings.redis_max_connections,
        faults=faults,
    )
    return RedisAccess(
        client,
        breaker,
        socket_timeout_s=settings.redis_socket_timeout_s,
        ratelimit_timeout_s=settings.ratelimit_redis_timeout_s,
    )
