"""CacheService: cache-aside over Redis with stamp-validated entries (see ``scripts.py``).

- **Lazy loading**: a miss runs the loader (PostgreSQL) and stores its result.
- **One recomputation per key per instance**: concurrent misses of one key share one load
  (a single-flight table of futures); the 99 others await the first one's result.
- **No herd on expiry**: a hit close to its expiry is refreshed early in the background with
  probability ``exp(-remaining / (load_time x beta))`` (XFetch, Vattani et al., VLDB 2015),
  so one reader — not all of them at once — recomputes a hot key before it expires.
- **Fail open, fast**: every Redis call goes through ``agora.redis`` (use ``cache``: the
  ``redis`` circuit breaker and a short timeout); an error or an open breaker sends the
  request to the loader, never to a 5xx.
  Invalidations that fail are kept and retried, so a Redis that comes back does not serve what
  changed while it was unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from agora.cache import prefetch, scripts
from agora.cache.stats import CacheStats
from agora.observability.logging import get_logger
from agora.observability.metrics import CACHE_EVICTIONS
from agora.redis import keys, uses
from agora.redis.access import RedisAccess, RedisUnavailable
from agora.resilience.breaker import BreakerState

log = get_logger(__name__)

M = TypeVar("M", bound=BaseModel)

_MAX_PENDING_INVALIDATIONS = 100_000

entry_key = keys.cache_entry
stamp = keys.stamp


@dataclass(frozen=True, slots=True)
class Loaded(Generic[M]):
    """A loader's answer: ``value`` (None: nothing to cache, e.g. not found) and the stamps it
    depends on (None: serve it but do not cache it)."""

    value: M | None
    depends_on: Sequence[str] | None


Loader = Callable[[bool], Awaitable[Loaded[M]]]
"""Called with ``storing``: False when the result cannot be cached (Redis unavailable), so a
loader may skip what it gathers only to name dependencies. When ``storing`` a loader must read
the primary, not a replica: rows from a lagging replica stored under current stamps would be
served stale for a whole TTL (the store guard trusts that a committed write is visible)."""


class CacheService:
    def __init__(
        self,
        access: RedisAccess,
        *,
        stamp_ttl_s: float = 3600.0,
        early_refresh_beta: float = 1.0,
    ) -> None:
        self._access = access
        self._stamp_ttl_ms = int(stamp_ttl_s * 1000)
        self._beta = early_refresh_beta
        self._lookup = access.script(scripts.LOOKUP)
        self._store = access.script(scripts.STORE)
        self._bump = access.script(scripts.BUMP)
        self._flights: dict[str, asyncio.Future[object]] = {}
        self._stats = CacheStats()
        self._pending: set[str] = set()
        self._evicted_seen: int | None = None

    # -- reads -------------------------------------------------------------------------------

    async def get_or_load(
        self,
        cache: str,
        key: str,
        model: type[M],
        load: Loader[M],
        *,
        ttl_s: float,
    ) -> M | None:
        """The cached value of ``cache``/``key``, or ``load``'s (stored for ``ttl_s``)."""
        entry = entry_key(cache, key)
        offered = prefetch.take(entry)
        flight = self._flights.get(entry)
        if flight is not None:
            self._stats.count(cache, "miss")
            return await self._join(flight, model)
        try:
            reply = offered or await self._call(self._lookup, [entry], [])
            hit, payload, pttl_ms, load_ms, now_us = reply
        except RedisUnavailable:
            self._stats.count(cache, "error")
            return await self._join(self._flight(entry, load, ttl_s, None), model)
        if not hit:
            self._stats.count(cache, "miss")
            return await self._join(self._flight(entry, load, ttl_s, now_us), model)
        self._stats.count(cache, "hit")
        if self._refresh_early(int(pttl_ms), int(load_ms)):
            self._flight(entry, load, ttl_s, now_us)
        return model.model_validate_json(payload)

    def cached_json(
        self, cache: str, key: str, loader: Callable[[], Loader[M]], *, ttl_s: float
    ) -> bytes | None:
        """The stored JSON of ``cache``/``key``, as stored, when the lookup sent ahead in this
        request (``agora.cache.prefetch``) found it fresh: a hit served without building the
        model and serialising it again (the entry is the model's own ``model_dump_json``).
        Counted and refreshed early like a ``get_or_load`` hit. None for anything else (no
        lookup sent ahead, a miss, a load of this entry in flight): the offered reply is then
        left for ``get_or_load``, which the caller uses instead. ``loader()``: the load, built
        only for an early refresh (most hits need none)."""
        entry = entry_key(cache, key)
        reply = prefetch.peek(entry)
        if reply is None or not reply[0] or entry in self._flights:
            return None
        prefetch.take(entry)
        _, payload, pttl_ms, load_ms, now_us = reply
        self._stats.count(cache, "hit")
        if self._refresh_early(int(pttl_ms), int(load_ms)):
            self._flight(entry, loader(), ttl_s, now_us)
        return bytes(payload)

    def _refresh_early(self, pttl_ms: int, load_ms: int) -> bool:
        if pttl_ms <= 0 or load_ms <= 0:
            return False
        return -max(load_ms, 1) * self._beta * math.log(1.0 - random.random()) >= pttl_ms  # noqa: S311  # nosec B311 # XFetch draw

    def _flight(
        self,
        entry: str,
        load: Loader[M],
        ttl_s: float,
        t0_us: bytes | None,
    ) -> asyncio.Future[object]:
        """The in-flight load of ``entry``, started now unless one already runs."""
        running = self._flights.get(entry)
        if running is not None:
            return running
        flight: asyncio.Future[object] = asyncio.ensure_future(
            self._load_and_store(entry, load, ttl_s, t0_us)
        )
        self._flights[entry] = flight
        flight.add_done_callback(lambda done: self._landed(entry, done))
        return flight

    def _landed(self, entry: str, flight: asyncio.Future[object]) -> None:
        if self._flights.get(entry) is flight:
            del self._flights[entry]
        if not flight.cancelled():
            flight.exception()  # retrieved: a background refresh may have no waiter

    @staticmethod
    async def _join(flight: asyncio.Future[object], model: type[M]) -> M | None:
        # shield: one cancelled waiter must not cancel the load the others are waiting for.
        value = await asyncio.shield(flight)
        return value if isinstance(value, model) else None

    async def _load_and_store(
        self,
        entry: str,
        load: Loader[M],
        ttl_s: float,
        t0_us: bytes | None,
    ) -> M | None:
        started = time.perf_counter()
        loaded = await load(t0_us is not None)
        load_ms = max(1, int((time.perf_counter() - started) * 1000))
        if loaded.value is None or loaded.depends_on is None or t0_us is None:
            return loaded.value
        args: list[object] = [
            loaded.value.model_dump_json(),
            int(ttl_s * 1000),
            t0_us,
            load_ms,
            self._stamp_ttl_ms,
            *dict.fromkeys(loaded.depends_on),
        ]
        with contextlib.suppress(RedisUnavailable):
            await self._call(self._store, [entry], args)
        return loaded.value

    @property
    def lookup_sha(self) -> str:
        """The lookup script's SHA, for a lookup sent ahead (``agora.cache.prefetch``)."""
        sha: str = self._lookup.sha
        return sha

    # -- facts with a known lifetime (session data) ------------------------------------------

    async def remember(self, cache: str, key: str, value: str, *, ttl_s: float) -> None:
        """Record a fact for exactly ``ttl_s`` seconds (best effort: Redis may be away)."""
        ttl_ms = max(1, int(ttl_s * 1000))
        entry = keys.cache_entry(cache, key)
        with contextlib.suppress(RedisUnavailable):
            await self._access.call(uses.SESSION_FACTS, lambda r: r.set(entry, value, px=ttl_ms))

    async def recall(self, cache: str, key: str) -> str | None:
        """A fact recorded by :meth:`remember`, or None (unknown, expired or Redis away)."""
        entry = keys.cache_entry(cache, key)
        try:
            value = await self._access.call(uses.SESSION_FACTS, lambda r: r.get(entry))
        except RedisUnavailable:
            self._stats.count(cache, "error")
            return None
        self._stats.count(cache, "miss" if value is None else "hit")
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    # -- writes ------------------------------------------------------------------------------

    async def invalidate(self, stamps: Iterable[str]) -> None:
        """Move these stamps forward: every entry depending on one of them is stale from now.

        Call it after the transaction commits. When Redis cannot be reached the stamps are
        kept and retried by :meth:`run_maintenance`.
        """
        moved = list(dict.fromkeys(stamps))
        if not moved:
            return
        # A load already in flight may have read the rows before this write: new readers of
        # this instance must not join it (read-your-writes), so start afresh.
        self._flights.clear()
        try:
            await self._call(self._bump, moved, [self._stamp_ttl_ms])
        except RedisUnavailable as exc:
            if len(self._pending) < _MAX_PENDING_INVALIDATIONS:
                self._pending.update(moved)
            log.warning("cache invalidation deferred", stamps=len(moved), error=repr(exc))

    async def flush_pending(self) -> None:
        if not self._pending or self._access.breaker.state is BreakerState.OPEN:
            return
        pending = list(self._pending)
        with contextlib.suppress(RedisUnavailable):
            await self._call(self._bump, pending, [self._stamp_ttl_ms])
            self._pending.difference_update(pending)
            log.info("deferred cache invalidations applied", stamps=len(pending))

    @property
    def pending_invalidations(self) -> int:
        return len(self._pending)

    # -- background: deferred invalidations and the eviction counter -------------------------

    async def run_maintenance(
        self, stop: asyncio.Event, *, interval_s: float = 1.0, info_every: int = 15
    ) -> None:
        """Until ``stop`` is set: retry deferred invalidations; sample ``evicted_keys``."""
        tick = 0
        while not stop.is_set():
            await self.flush_pending()
            if tick % info_every == 0:
                await self.sample_evictions()
            tick += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)

    async def sample_evictions(self) -> None:
        if self._access.breaker.state is BreakerState.OPEN:
            return
        try:
            info = await self._access.call(uses.CACHE, lambda r: r.info("stats"))
        except RedisUnavailable:
            return
        evicted = int(info.get("evicted_keys", 0))
        previous = self._evicted_seen
        self._evicted_seen = evicted
        if previous is None:
            return  # the first sample is the baseline: evictions before this process started
        # A restarted Redis counts from zero again: all it reports is new.
        CACHE_EVICTIONS.inc(evicted - previous if evicted >= previous else evicted)

    # -- plumbing ----------------------------------------------------------------------------

    async def _call(
        self, script: AsyncScript, script_keys: list[str], args: list[object]
    ) -> list[bytes]:
        """One script call as the ``cache`` use: through the breaker, bounded by the timeout."""

        async def run(client: Redis) -> list[bytes]:
            result: list[bytes] = await script(keys=script_keys, args=args, client=client)  # type: ignore[arg-type]
            return result

        result = await self._access.call(uses.CACHE, run)
        return result if isinstance(result, list) else [result]


@contextlib.asynccontextmanager
async def running_cache(
    access: RedisAccess, *, early_refresh_beta: float
) -> AsyncIterator[CacheService]:
    """A CacheService with its maintenance task, for one app's lifespan."""
    cache = CacheService(access, early_refresh_beta=early_refresh_beta)
    stop = asyncio.Event()
    task = asyncio.create_task(cache.run_maintenance(stop), name="cache-maintenance")
    try:
        yield cache
    finally:
        # A flag, not task.cancel(): a cancellation landing inside a redis-py call was seen
        # swallowed there, leaving shutdown waiting on a loop that never ends.
        stop.set()
        await asyncio.wait([task], timeout=2 * access.timeout_s(uses.CACHE) + 1)
        task.cancel()
