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
ACTIVE_USERS = Gauge("agora_active_users", "Distinct users with a request in the last 5 minutes.")

DB_QUERY_DURATION = Histogram(
    "agora_db_query_duration_seconds",
    "PostgreSQL query duration, by operation and pool (primary/replica).",
    ["operation", "pool"],
    buckets=LATENCY_BUCKETS,
)
DB_POOL_CONNECTIONS = Gauge(
    "agora_db_pool_connections",
    "Database pool connections, by state (active/idle/waiting) and pool.",
    ["state", "pool"],
)
CACHE_REQUESTS = Counter(
    "agora_cache_requests_total",
    "Cache lookups, by cache and result (hit/miss/error).",
    ["cache", "result"],
)
CACHE_HIT_RATIO = Gauge(
    "agora_cache_hit_ratio", "Hits / (hits + misses) since start, by cache.", ["cache"]
)
CACHE_EVICTIONS = Counter(
    "agora_cache_evictions_total", "Keys Redis evicted under memory pressure (evicted_keys)."
)
RATELIMIT_REJECTIONS = Counter(
    "agora_ratelimit_rejections_total", "Requests or messages refused by a limit.", ["limit"]
)
ERRORS = Counter("agora_errors_total", "Errors, by type.", ["type"])
ADMISSION_REJECTIONS = Counter(
    "agora_admission_rejections_total",
    "HTTP requests refused with 503 because the instance had its maximum in flight.",
)
ADMISSION_IN_FLIGHT = Gauge(
    "agora_admission_in_flight", "HTTP requests in the application now (admission control)."
)
ADMISSION_WAITING = Gauge(
    "agora_admission_waiting", "HTTP requests waiting for a turn (admission control)."
)
PASSWORD_HASH_REJECTIONS = Counter(
    "agora_password_hash_rejections_total",
    "Sign-ins refused with 503 because every password-hashing turn and queue slot was taken.",
)
CIRCUIT_BREAKER_STATE = Gauge(
    "agora_circuit_breaker_state",
    "Circuit breaker state: 0 closed, 1 open, 2 half-open.",
    ["breaker"],
)
CIRCUIT_BREAKER_FAILURES = Counter(
    "agora_circuit_breaker_failures_total", "Failures recorded by a breaker.", ["breaker"]
)
DEPENDENCY_UP = Gauge(
    "agora_dependency_up", "1 when the last check of a dependency passed.", ["dependency"]
)
BUILD_INFO = Gauge(
    "agora_build_info", "1: the running version and source revision.", ["version", "revision"]
)

# Label values known in advance start at 0, so a panel or alert reads 0 rather than "no data"
# before the first use (exposition.preinitialise does the same for routes, pools and breakers).
CACHE_NAMES = ("profile", "post", "feed", "session")
RATE_LIMIT_NAMES = (
    "user",
    "credentials",
    "anonymous",
    "login_account",
    "websocket",
    "ws_message_size",
    "ws_sockets_per_user",
)
for _cache in CACHE_NAMES:
    for _result in ("hit", "miss", "error"):
        CACHE_REQUESTS.labels(_cache, _result)
for _limit in RATE_LIMIT_NAMES:
    RATELIMIT_REJECTIONS.labels(_limit)
ERRORS.labels("ratelimit_fallback")
