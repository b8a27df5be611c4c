"""``RateLimiter``: the Redis GCRA with an in-process fallback.

Limits must never take the API down with them. A Redis call that fails or takes longer than
``AGORA_RATELIMIT_REDIS_TIMEOUT_S`` (the ``rate_limit`` use of ``agora.redis``) is answered
by the in-process store instead (same limits, counted per instance)
and Redis is left alone for ``fallback_s`` before it is tried again, so an outage costs one
short wait per back-off period, not one per request. Each switch to the fallback is counted
(``agora_errors_total{type="ratelimit_fallback"}``) and logged once.

The fallback period is this use's breaker (it opens on the first failure), which is why the
``rate_limit`` use is not behind the shared ``redis`` breaker.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from agora.observability.logging import get_logger
from agora.observability.metrics import ERRORS
from agora.ratelimit.gcra import Decision, MemoryStore
from agora.ratelimit.rates import Rate
from agora.ratelimit.redis_store import RedisStore
from agora.redis.access import RedisAccess, RedisUnavailable

log = get_logger(__name__)

_FALLBACKS = ERRORS.labels("ratelimit_fallback")


class RateLimiter:
    def __init__(
        self,
        access: RedisAccess,
        *,
        fallback_s: float = 5.0,
        max_backoff_s: int = 300,
    ) -> None:
        self.redis_store = RedisStore(access)
        self.memory = MemoryStore()
        self.fallback_s = fallback_s
        self.max_backoff_s = max_backoff_s
        self.fallbacks = 0
        self._retry_redis_at = 0.0
        self._on_fallback = False
        self._answered_at = float("-inf")  # when Redis last answered a call of this limiter

    @property
    def using_redis(self) -> bool:
        return not self._on_fallback

    async def hit(self, key: str, rate: Rate) -> Decision:
        """Count one request of ``key`` against ``rate``; never raises for a Redis problem."""
        decision, _, _ = await self._decide(key, rate, None, None)
        return decision

    async def hit_and_check(
        self,
        key: str,
        rate: Rate,
        exists_keys: Sequence[str],
        lookup: tuple[str, str] | None = None,
    ) -> tuple[Decision, tuple[bool, ...] | None, list[Any] | None]:
        """``hit``, whether each of ``exists_keys`` exists and, with ``lookup`` (script SHA,
        key), that script's reply, in the same round trip (the request's other per-user reads ride
        along); ``None`` for what the in-process fallback could not answer."""
        return await self._decide(key, rate, exists_keys, lookup)

    async def _decide(
        self,
        key: str,
        rate: Rate,
        exists_keys: Sequence[str] | None,
        lookup: tuple[str, str] | None,
    ) -> tuple[Decision, tuple[bool, ...] | None, list[Any] | None]:
        started = time.monotonic()
        if started >= self._retry_redis_at:
            looked: list[Any] | None = None
            try:
                exists: tuple[bool, ...] | None
                if exists_keys is None:
                    decision = await self.redis_store.hit(
                        key, rate, strike_ttl_s=self.max_backoff_s
                    )
                    exists = None
                else:
                    decision, exists, looked = await self.redis_store.hit_check_and_look(
                        key, rate, exists_keys, lookup, strike_ttl_s=self.max_backoff_s
                    )
            except RedisUnavailable as exc:
                if not (isinstance(exc.cause, TimeoutError) and self._answered_at > started):
                    self._fall_back(exc.cause)
                # else Redis answered other calls while this one waited: the wait was this
                # process's (an event loop too busy to read the reply in time, as under
                # overload), not Redis's. Only this request is decided in process; switching
                # every request to the fallback would add the round trips the limiter's
                # pipeline saves (deletion mark, cache lookup) just when the process is busiest.
            else:
                self._answered_at = time.monotonic()
                if self._on_fallback:
                    self._on_fallback = False
                    log.info("rate limiter back on Redis")
                return decision, exists, looked
        return self.memory.hit(key, rate, strike_ttl_s=self.max_backoff_s), None, None

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
