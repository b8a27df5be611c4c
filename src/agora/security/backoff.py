"""Per-account login backoff: after repeated wrong passwords for one account, its logins wait.

The per-IP limits (``agora.ratelimit``) stop one address guessing many passwords; they do not
stop a botnet spreading guesses for one account over many addresses. This does: from the
``threshold``-th consecutive failure on, the account is locked for ``2^(n - threshold)``
seconds (1, 2, 4, ... capped at ``max_s``), whoever asks, right password or not. A success
resets it; failures are forgotten ``max_s`` after the last one.

The cost of the lock-out being triggered by someone else (an attacker can delay a victim's
login) is bounded by ``max_s``; it never locks for good. Keys hold a hash of the account, not
the user name or e-mail. Redis failures fail open: the check costs one round trip, and a Redis
outage must not stop every login (the argon2 cost still bounds guessing).
"""

from __future__ import annotations

import hashlib
import math

from redis.asyncio import Redis
from redis.exceptions import RedisError

from agora.observability.logging import get_logger

log = get_logger(__name__)

_PREFIX = "agora:login-backoff:"


def _key(kind: str, account: str) -> str:
    digest = hashlib.sha256(account.encode()).hexdigest()[:32]
    return f"{_PREFIX}{kind}:{digest}"


class LoginBackoff:
    def __init__(self, redis: Redis, *, threshold: int, max_s: int) -> None:
        self._redis = redis
        self._threshold = threshold
        self._max_s = max_s

    async def retry_after(self, account: str) -> int:
        """Seconds until ``account`` may try again; 0 when it may now."""
        try:
            remaining_ms = int(await self._redis.pttl(_key("lock", account)))
        except RedisError as exc:
            log.warning("login backoff unavailable; allowing", error=repr(exc))
            return 0
        return math.ceil(remaining_ms / 1000) if remaining_ms > 0 else 0

    async def failed(self, account: str) -> None:
        fails_key = _key("fails", account)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(fails_key)
                pipe.expire(fails_key, self._max_s)
                failures, _ = await pipe.execute()
            over = int(failures) - self._threshold
            if over >= 0:
                lock_s = min(2 ** min(over, 30), self._max_s)
                await self._redis.set(_key("lock", account), b"1", ex=lock_s)
        except RedisError as exc:
            log.warning("login backoff not recorded", error=repr(exc))

    async def succeeded(self, account: str) -> None:
        try:
            await self._redis.delete(_key("fails", account), _key("lock", account))
        except RedisError as exc:
            log.warning("login backoff not reset", error=repr(exc))
