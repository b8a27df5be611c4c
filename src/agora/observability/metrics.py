"""Prometheus metric families (names and labels per the contract in ARCHITECTURE.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Buckets resolve the 200 ms objective: several edges below and around it.
LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
)

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
WEBSOCKET_CONNECTIONS = Gauge(
    "agora_websocket_connections",
    "Open WebSocket connections on this instance.",
    ["service"],
)
WEBSOCKET_MESSAGES = Counter(
    "agora_websocket_messages_total",
    "WebSocket messages, by direction (in/out) and message type.",
    ["direction", "type"],
)
USERS_REGISTERED = Counter("agora_users_registered_total", "Accounts registered.")
POSTS_CREATED = Counter("agora_posts_created_total", "Posts created.")
LIKES = Counter("agora_likes_total", "New likes (a repeated like is not counted).")
FOLLOWS = Counter("agora_follows_total", "New follows (a repeated follow is not counted).")
NOTIFICATIONS_SENT = Counter("agora_notifications_sent_total", "Notifications created.")
