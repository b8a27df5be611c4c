"""Series the dashboards and alerts read exist at 0 before their first use."""

from __future__ import annotations

from agora.observability.exposition import render_metrics
from agora.observability.metrics import CACHE_NAMES, RATE_LIMIT_NAMES


def test_cache_limit_and_fallback_series_start_at_zero() -> None:
    text = render_metrics()[0].decode()
    for cache in CACHE_NAMES:
        for result in ("hit", "miss", "error"):
            assert f'agora_cache_requests_total{{cache="{cache}",result="{result}"}}' in text
    for limit in RATE_LIMIT_NAMES:
        assert f'agora_ratelimit_rejections_total{{limit="{limit}"}}' in text
    assert 'agora_errors_total{type="ratelimit_fallback"}' in text
