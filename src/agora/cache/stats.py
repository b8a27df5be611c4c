"""Cache request counters and the per-cache hit ratio (since this process started)."""

from __future__ import annotations

from typing import Any, Literal

from agora.observability.metrics import CACHE_HIT_RATIO, CACHE_REQUESTS

Result = Literal["hit", "miss", "error"]


class CacheStats:
    def __init__(self) -> None:
        self._hits: dict[str, int] = {}
        self._misses: dict[str, int] = {}
        # Metric children per label set (a few caches, three results): labels() each time
        # takes a lock and builds a key, on every cached read.
        self._requests: dict[tuple[str, str], Any] = {}
        self._ratios: dict[str, Any] = {}

    def count(self, cache: str, result: Result) -> None:
        requests = self._requests.get((cache, result))
        if requests is None:
            requests = self._requests[cache, result] = CACHE_REQUESTS.labels(cache, result)
        requests.inc()
        if result == "error":
            return  # Redis did not answer: says nothing about how well the cache works
        tally = self._hits if result == "hit" else self._misses
        tally[cache] = tally.get(cache, 0) + 1
        hits, misses = self._hits.get(cache, 0), self._misses.get(cache, 0)
        ratio = self._ratios.get(cache)
        if ratio is None:
            ratio = self._ratios[cache] = CACHE_HIT_RATIO.labels(cache)
        ratio.set(hits / (hits + misses))
