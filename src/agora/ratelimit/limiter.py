"""``RateLimiter``: the Redis GCRA with an in-process fallback.

Limits must never take the API down with them. A Redis call that fails or takes longer than
``timeout_s`` is answered by the in-process store instead (same limits, counted per instance)
and Redis is left alone for ``fallback_s`` before it is tried again, so an outage costs one
short wait per back-off period, not one per request. Each switch to the fallback is counted
(``agora_errors_total{type="ratelimit_fallback"}``) and logged once.

Self-contained on purpose: a circuit breaker can later wrap ``RedisStore.hit`` without this
module changing shape.
"""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from agora.observability.logging import get_logger
from agora.observability.metrics import ERRORS
from agora.ratelimit.gcra import Decision, MemoryStore
from agora.ratelimit.rates import Rate
from agora.ratelimit.redis_store import RedisStore

log = get_logger(__name__)

_FALLBACKS = ERRORS.labels("ratelimit_fallback")


class RateLimiter:
    def __init__(
        self,
        redis: Redis,
        *,
        timeout_s: float = 0.1,
        fallback_s: float = 5.0,
        max_backoff_s: int = 300,
    ) -> None:
        self.redis_store = RedisStore(redis)
        self.memory = MemoryStore()
        self.timeout_s = timeout_s
        self.fallback_s = fallback_s
        self.max_backoff_s = max_backoff_s
        self.fallbacks = 0
        self._retry_redis_at = 0.0
        self._on_fallback = False

    @property
    def using_redis(self) -> bool:
        return not self._on_fallback

    async def hit(self, key: str, rate: Rate) -> Decision:
        """Count one request of ``key`` against ``rate``; never raises for a Redis problem."""
        decision, _ = await self._decide(key, rate, None)
        return decision

    async def hit_and_check(
        self, key: str, rate: Rate, exists_key: str
    ) -> tuple[Decision, bool | None]:
        """``hit``, and whether ``exists_key`` exists, in the same round trip (the request's
        other per-user read rides along); ``None`` when the in-process fallback decided."""
        return await self._decide(key, rate, exists_key)

    async def _decide(
        self, key: str, rate: Rate, exists_key: str | None
    ) -> tuple[Decision, bool | None]:
        if time.monotonic() >= self._retry_redis_at:
            try:
                async with asyncio.timeout(self.timeout_s):
                    if exists_key is None:
                        decision = await self.redis_store.hit(
                            key, rate, strike_ttl_s=self.max_backoff_s
                        )
                        exists = None
                    else:
                        decision, exists = await self.redis_store.hit_and_check(
                            key, rate, exists_key, strike_ttl_s=self.max_backoff_s
                        )
            except (RedisError, OSError, TimeoutError) as exc:
                self._fall_back(exc)
            else:
                if self._on_fallback:
                    self._on_fallback = False
                    log.info("rate limiter back on Redis")
                return decision, exists
        return self.memory.hit(key, rate, strike_ttl_s=self.max_backoff_s), None

    def _fall_back(self, exc: BaseException) -> None:
        self._retry_redis_at = time.monotonic() + self.fallback_s
        if not self._on_fallback:
            self._on_fallback = True
            self.fallbacks += 1
            _FALLBACKS.inc()
            log.warning(
                "rate limiter falling back to in-process limits",
                error_type=type(exc).__name__,
                retry_in_s=self.fallback_s,
            )
