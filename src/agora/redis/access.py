"""The one way Agora talks to Redis: every call names its ``Use``, and the use says how long
it may take, whether the ``redis`` breaker guards it and what happens without Redis.

Before, each user of Redis wrote its own ``try/except (RedisError, OSError, TimeoutError)``,
its own timeout and its own choice of breaker, eight times over. Here:

- ``call(use, command)``: the command under the use's timeout (enforced over redis-py's own
  retries) and, for a guarded use, the breaker; any failure (error, timeout, open breaker)
  is one exception, :class:`RedisUnavailable`.
- ``attempt(use, command, otherwise=...)``: for a use that fails open (``OPEN``) or falls back
  (``FALLBACK``): ``otherwise`` when Redis cannot answer, logged once per outage per use.
- ``require(use, command)``: for a use that fails closed (``CLOSED``): without Redis the
  operation is refused with the use's 503 (``Retry-After``).
- ``send_all(use, commands)``: several commands in one round trip under the use's timeout
  (``agora.redis.batch``: the hot path's lean pipeline, redis-py's when traced).

The policies are declared once, in ``agora.redis.uses``, and documented in
docs/architecture.md ("Redis access"). Keys come from ``agora.redis.keys`` only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import nullcontext
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from agora.errors import ServiceUnavailable
from agora.observability.logging import get_logger
from agora.redis.batch import Batches, Command
from agora.redis.policy import Degrade, RedisUnavailable, TimeoutName, Use
from agora.resilience.breaker import CircuitBreaker, CircuitOpenError

__all__ = ["REDIS_ERRORS", "Degrade", "RedisAccess", "RedisUnavailable", "Use"]

log = get_logger(__name__)

T = TypeVar("T")

# What "Redis did not answer" looks like from redis-py and asyncio; anything else is a bug
# and propagates.
REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError, TimeoutError)
_FAILURES: tuple[type[Exception], ...] = (CircuitOpenError, *REDIS_ERRORS)
_WARN_EVERY_S = 10.0


class RedisAccess:
    def __init__(
        self,
        client: Redis,
        breaker: CircuitBreaker,
        *,
        socket_timeout_s: float = 0.5,
        ratelimit_timeout_s: float = 0.1,
    ) -> None:
        self.client = client
        self.breaker = breaker
        self._timeouts: dict[TimeoutName, float] = {
            "socket": socket_timeout_s,
            "ratelimit": ratelimit_timeout_s,
        }
        self._warned_at: dict[str, float] = {}
        self._batches = Batches(client)

    def timeout_s(self, use: Use) -> float:
        return self._timeouts[use.timeout]

    def script(self, text: str) -> AsyncScript:
        """A registered script (EVALSHA, loaded again after NOSCRIPT), to run inside a call."""
        return self.client.register_script(text)

    def pubsub(self) -> PubSub:
        """For the events subscriber, which keeps one connection open and reconnects itself."""
        return self.client.pubsub(ignore_subscribe_messages=True)

    async def call(self, use: Use, command: Callable[[Redis], Awaitable[T]]) -> T:
        """``command(client)`` under ``use``'s timeout (and breaker); raises RedisUnavailable."""
        try:
            with self.breaker.guard() if use.guarded else nullcontext():
                async with asyncio.timeout(self.timeout_s(use)):
                    return await command(self.client)
        except _FAILURES as exc:
            raise RedisUnavailable(use, exc) from exc

    async def send_all(self, use: Use, commands: Sequence[Command]) -> list[Any]:
        """The replies of ``commands``, sent in one round trip, an error reply in its place;
        under ``use``'s timeout (and breaker), as ``call``."""
        try:
            with self.breaker.guard() if use.guarded else nullcontext():
                async with asyncio.timeout(self.timeout_s(use)):
                    return await self._batches.send_all(commands)
        except _FAILURES as exc:
            raise RedisUnavailable(use, exc) from exc

    async def attempt(
        self, use: Use, command: Callable[[Redis], Awaitable[T]], *, otherwise: T
    ) -> T:
        """``command``'s answer, or ``otherwise`` when Redis cannot give it (OPEN/FALLBACK)."""
        if use.degrade is Degrade.CLOSED:
            raise ValueError(f"{use.name} fails closed: use require()")
        try:
            return await self.call(use, command)
        except RedisUnavailable as exc:
            self.warn(exc)
            return otherwise

    async def require(self, use: Use, command: Callable[[Redis], Awaitable[T]]) -> T:
        """``command``'s answer; without Redis, the use's 503 (CLOSED uses)."""
        if use.degrade is not Degrade.CLOSED:
            raise ValueError(f"{use.name} does not fail closed: use attempt() or call()")
        try:
            return await self.call(use, command)
        except RedisUnavailable as exc:
            self.warn(exc)
            raise ServiceUnavailable(use.refusal, headers={"Retry-After": "5"}) from exc

    def warn(self, exc: RedisUnavailable) -> None:
        """One log line per use per outage (at most every 10 s), not one per request."""
        now = time.monotonic()
        if now - self._warned_at.get(exc.use.name, float("-inf")) < _WARN_EVERY_S:
            return
        self._warned_at[exc.use.name] = now
        log.warning(
            "redis unavailable",
            use=exc.use.name,
            policy=exc.use.degrade.value,
            without_redis=exc.use.without_redis,
            error=repr(exc.cause),
        )

    async def ping(self) -> None:
        """The readiness check: Redis itself, not a use (no breaker, the client's timeouts)."""
        await self.client.ping()

    async def aclose(self) -> None:
        await self.client.aclose()
