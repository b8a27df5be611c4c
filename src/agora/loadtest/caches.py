"""Cache hit ratios over the run, from the instances' own counters.

Every instance counts its cache lookups (``agora_cache_requests_total{cache, result}``). The
harness reads each instance's ``/metrics`` before and after k6 and reports, per cache, the
lookups in between and the share that were hits: the home feed's misses are the largest
item in posts' CPU (docs/performance.md), and the ratio says how many of them a run had.
"""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

Counters = dict[tuple[str, str], float]  # (cache, result) -> lookups so far
_SAMPLE = "agora_cache_requests_total"


def read_counters(metrics_urls: list[str]) -> Counters | None:
    """The lookups so far, summed over the instances; None when one did not answer (a
    difference against a missing instance would be invented)."""
    total: Counters = {}
    with httpx.Client(timeout=5) as client:
        for url in metrics_urls:
            try:
                text = client.get(url).raise_for_status().text
            except httpx.HTTPError:
                return None
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == _SAMPLE:
                        key = (sample.labels["cache"], sample.labels["result"])
                        total[key] = total.get(key, 0.0) + sample.value
    return total


def hit_ratios(before: Counters | None, after: Counters | None) -> dict[str, Any]:
    """Per cache: lookups during the run by result, their sum and the hits' share."""
    if before is None or after is None:
        return {}
    caches: dict[str, Any] = {}
    for (cache, result), value in sorted(after.items()):
        # An instance restarted mid-run starts from 0: its lookups before are not subtracted.
        counted = max(0.0, value - before.get((cache, result), 0.0))
        caches.setdefault(cache, {"by_result": {}})["by_result"][result] = counted
    for entry in caches.values():
        lookups = sum(entry["by_result"].values())
        entry["lookups"] = lookups
        entry["hit_ratio"] = entry["by_result"].get("hit", 0.0) / lookups if lookups else None
    return caches
