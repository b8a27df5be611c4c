"""Read routing: which pool serves a read, and read-your-writes across instances.

A user who has just written reads from the primary for ``window_s`` seconds; everyone else
reads from a replica. The "recently wrote" marker lives in Redis (a key with that TTL) so a
write on one instance steers the next read on any instance, and in a local dict so the
writing instance needs no round trip and still knows when Redis is down. When the marker
cannot be read (Redis down, its breaker open) the read goes to the primary: a wasted replica
read is cheaper than a user missing their own post.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from agora.observability.logging import get_logger
from agora.redis import keys, uses

if TYPE_CHECKING:
    from agora.db.managed import ManagedPool
    from agora.redis.access import RedisAccess

log = get_logger(__name__)

_LOCAL_LIMIT = 100_000


class RecentWriters:
    def __init__(
        self,
        access: RedisAccess | None,
        *,
        window_s: float,
    ) -> None:
        self._access = access
        self._window_s = window_s
        self._local: dict[str, float] = {}

    async def mark(self, user_id: str) -> None:
        now = time.monotonic()
        if len(self._local) >= _LOCAL_LIMIT:
            self._local = {u: t for u, t in self._local.items() if t > now}
        self._local[user_id] = now + self._window_s
        if self._access is None:
            return
        # Without Redis, other instances may serve this user a replica read that misses the
        # write for up to the replication lag; the write itself stands.
        key, ttl_ms = keys.recent_writer(user_id), int(self._window_s * 1000)
        await self._access.attempt(
            uses.RECENT_WRITER_MARK, lambda r: r.set(key, 1, px=ttl_ms), otherwise=None
        )

    async def recently_wrote(self, user_id: str) -> bool:
        if self._local.get(user_id, 0.0) > time.monotonic():
            return True
        if self._access is None:
            return False
        key = keys.recent_writer(user_id)
        # Unknown (Redis away) counts as "wrote": the read goes to the primary.
        return bool(
            await self._access.attempt(
                uses.RECENT_WRITER_CHECK, lambda r: r.exists(key), otherwise=1
            )
        )


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
