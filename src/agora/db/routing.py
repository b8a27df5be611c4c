"""Read routing: which pool serves a read, and read-your-writes across instances.

A user who has just written reads from the primary for ``window_s`` seconds; everyone else
reads from a replica. The "recently wrote" marker lives in Redis (a key with that TTL) so a
write on one instance steers the next read on any instance, and in a local dict so the
writing instance needs no round trip and still knows when Redis is down. When the marker
cannot be read (Redis down, its breaker open) the read goes to the primary: a wasted replica
read is cheaper than a user missing their own post.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from agora.observability.logging import get_logger

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from agora.db.managed import ManagedPool
    from agora.resilience.breaker import CircuitBreaker

log = get_logger(__name__)

_KEY = "agora:db:wrote:{}"
_LOCAL_LIMIT = 100_000


class RecentWriters:
    def __init__(
        self,
        redis: Redis | None,
        *,
        window_s: float,
        breaker: CircuitBreaker | None = None,
        timeout_s: float = 0.25,
    ) -> None:
        self._redis = redis
        self._window_s = window_s
        self._breaker = breaker
        self._timeout_s = timeout_s
        self._local: dict[str, float] = {}

    async def mark(self, user_id: str) -> None:
        now = time.monotonic()
        if len(self._local) >= _LOCAL_LIMIT:
            self._local = {u: t for u, t in self._local.items() if t > now}
        self._local[user_id] = now + self._window_s
        if self._redis is None:
            return
        try:
            ttl_ms = int(self._window_s * 1000)
            await self._call(lambda redis: redis.set(_KEY.format(user_id), 1, px=ttl_ms))
        except Exception as exc:
            # Other instances may serve this user a replica read that misses the write for
            # up to the replication lag; the write itself stands.
            log.warning("read-your-writes marker not stored", user_id=user_id, error=repr(exc))

    async def recently_wrote(self, user_id: str) -> bool:
        if self._local.get(user_id, 0.0) > time.monotonic():
            return True
        if self._redis is None:
            return False
        try:
            return bool(await self._call(lambda redis: redis.exists(_KEY.format(user_id))))
        except Exception:
            return True

    async def _call(self, command: Callable[[Redis], Awaitable[Any]]) -> Any:
        assert self._redis is not None
        with self._breaker.guard() if self._breaker is not None else nullcontext():
            async with asyncio.timeout(self._timeout_s):
                return await command(self._redis)


class ReplicaSet:
    """Round-robin over replicas, skipping one for ``cooldown_s`` after it failed to connect."""

    def __init__(self, pools: Sequence[ManagedPool], *, cooldown_s: float) -> None:
        self.pools = list(pools)
        self._cooldown_s = cooldown_s
        self._down_until = [0.0] * len(self.pools)
        self._next = itertools.cycle(range(len(self.pools))) if self.pools else None

    def pick(self) -> ManagedPool | None:
        if self._next is None:
            return None
        now = time.monotonic()
        for _ in range(len(self.pools)):
            index = next(self._next)
            if self._down_until[index] <= now:
                return self.pools[index]
        return None

    def mark_down(self, pool: ManagedPool) -> None:
        index = self.pools.index(pool)
        self._down_until[index] = time.monotonic() + self._cooldown_s
        log.warning("read replica unreachable; reading from the primary", replica=index)
