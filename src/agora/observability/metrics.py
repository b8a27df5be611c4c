"""Prometheus metric families (names and labels per the contract in ARCHITECTURE.md)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# Buckets resolve the 200 ms objective: several edges below and around it.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 0.75, 1.0,
                   2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "agora_http_requests_total",
    "HTTP requests served, by route template and status.",
    ["service", "method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "agora_http_request_duration_seconds",
    "HTTP request duration, by route template.",
    ["service", "method", "route"],
    buckets=LATENCY_BUCKETS,
)
