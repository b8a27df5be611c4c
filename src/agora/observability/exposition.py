"""``/metrics``: every family with its known label values at zero from start-up, so alerts
and dashboards see 0 rather than an absent series; multiprocess-aware rendering.

Label values only a request can reveal (an error code no one has hit yet, a cache or limit
name another module creates) appear when first used; everything the contract names, and every
route template of the app, is here from the first scrape.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.routing import BaseRoute, WebSocketRoute

from agora.observability.metrics import (
    CIRCUIT_BREAKER_FAILURES,
    CIRCUIT_BREAKER_STATE,
    DB_POOL_CONNECTIONS,
    ERRORS,
    HTTP_REQUEST_DURATION,
    HTTP_REQUESTS,
    WEBSOCKET_CONNECTIONS,
    WEBSOCKET_MESSAGES,
)
from agora.observability.route_templates import effective_routes

UNTRACKED_PATHS = frozenset({"/metrics", "/healthz", "/healthz/live", "/healthz/ready", "/readyz"})
BREAKERS = ("postgres", "redis", "jwks")
POOLS = ("primary", "replica")
POOL_STATES = ("active", "idle", "waiting")
# Statuses every route can answer besides its own success code; 5xx first, for alerts.
ROUTE_STATUSES = ("500", "503")
WS_MESSAGES_IN = ("ping", "unknown", "malformed")
WS_MESSAGES_OUT = ("post.created", "notification", "pong", "error", "server.draining")
# The error codes of agora.errors and the app's handlers (the ``type`` of agora_errors_total).
ERROR_TYPES = (
    "bad_request",
    "malformed_json",
    "validation_error",
    "unauthenticated",
    "invalid_token",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "conflict",
    "payload_too_large",
    "rate_limited",
    "unavailable",
    "internal_error",
)


def preinitialise(service: str, routes: Sequence[BaseRoute]) -> None:
    """Every label set a dashboard or alert reads exists from the start, at zero."""
    for path, route in effective_routes(routes):
        if path in UNTRACKED_PATHS:
            continue
        if isinstance(route, WebSocketRoute):
            _websocket_series(service)
        elif isinstance(route, APIRoute):  # not the documentation pages
            _route_series(service, path, route)
    for pool in POOLS:
        for state in POOL_STATES:
            DB_POOL_CONNECTIONS.labels(state, pool)
    for breaker in BREAKERS:
        CIRCUIT_BREAKER_STATE.labels(breaker)
        CIRCUIT_BREAKER_FAILURES.labels(breaker)
    for error_type in ERROR_TYPES:
        ERRORS.labels(error_type)


def _websocket_series(service: str) -> None:
    WEBSOCKET_CONNECTIONS.labels(service)
    for kind in WS_MESSAGES_IN:
        WEBSOCKET_MESSAGES.labels("in", kind)
    for kind in WS_MESSAGES_OUT:
        WEBSOCKET_MESSAGES.labels("out", kind)


def _route_series(service: str, path: str, route: APIRoute) -> None:
    success = str(route.status_code or 200)
    for method in sorted(route.methods or ()):
        if method == "HEAD":
            continue
        HTTP_REQUEST_DURATION.labels(service, method, path)
        for status in (success, *ROUTE_STATUSES):
            HTTP_REQUESTS.labels(service, method, path, status)


def render_metrics() -> tuple[bytes, str]:
    """The exposition text. With several worker processes (``PROMETHEUS_MULTIPROC_DIR`` set
    before start, as prometheus_client requires) it aggregates every worker's files; Agora
    itself runs one worker per process and does not need it."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
