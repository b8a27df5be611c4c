"""Merging k6 processes' summaries: conservative percentiles, summed counts, ANDed verdicts."""

from __future__ import annotations

from typing import Any

from agora.loadtest.report import merge, verdicts


def summary(p95: float, requests: int, fails: int, ok: bool) -> dict[str, Any]:
    return {
        "metrics": {
            "http_req_duration{kind:api}": {
                "type": "trend",
                "values": {"p(95)": p95, "med": p95 / 2, "count": requests},
                "thresholds": {"p(95)<200": {"ok": ok}},
            },
            "http_reqs": {"type": "counter", "values": {"count": requests, "rate": requests / 10}},
            "http_req_failed": {
                "type": "rate",
                "values": {"rate": fails / requests, "passes": fails, "fails": requests - fails},
                "thresholds": {"rate<0.001": {"ok": fails / requests < 0.001}},
            },
        }
    }


def test_percentiles_take_the_worst_process_and_counts_add_up() -> None:
    merged = merge([summary(120.0, 1000, 0, True), summary(180.0, 3000, 3, True)])
    assert merged["http_req_duration{kind:api}"]["values"]["p(95)"] == 180.0
    assert merged["http_req_duration{kind:api}"]["values"]["count"] == 4000
    assert merged["http_reqs"]["values"] == {"count": 4000, "rate": 400.0}
    assert merged["http_req_failed"]["values"]["rate"] == 3 / 4000


def test_a_threshold_fails_when_any_process_failed_it() -> None:
    merged = merge([summary(120.0, 1000, 0, True), summary(250.0, 1000, 5, False)])
    results = {(v.metric, v.threshold): v for v in verdicts(merged)}
    latency = results[("http_req_duration{kind:api}", "p(95)<200")]
    assert (latency.ok, latency.value) == (False, 250.0)
    errors = results[("http_req_failed", "rate<0.001")]
    assert errors.ok is False
    assert errors.value == 5 / 2000
