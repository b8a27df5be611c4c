"""Cache request counters and the per-cache hit ratio (since this process started)."""

from __future__ import annotations

from typing import Literal

from agora.observability.metrics import CACHE_HIT_RATIO, CACHE_REQUESTS

Result = Literal["hit", "miss", "error"]


class CacheStats:
    def __init__(self) -> None:
        self._hits: dict[str, int] = {}
        self._misses: dict[str, int] = {}

    def count(self, cache: str, result: Result) -> None:
        CACHE_REQUESTS.labels(cache=cache, result=result).inc()
        if result == "error":
            return  # Redis did not answer: says nothing about how well the cache works
        tally = self._hits if result == "hit" else self._misses
        tally[cache] = tally.get(cache, 0) + 1
        hits, misses = self._hits.get(cache, 0), self._misses.get(cache, 0)
        CACHE_HIT_RATIO.labels(cache=cache).set(hits / (hits + misses))
