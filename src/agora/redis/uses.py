"""Every use Agora makes of Redis, with its policy without Redis: the one table.

docs/architecture.md ("Redis access") lists the same table for operators;
``tests/integration/redis/test_policies.py`` stops a real redis-server and checks each use
behaves as declared here.
"""

from __future__ import annotations

from agora.redis.policy import Degrade, Use

CACHE = Use(
    "cache",
    Degrade.FALLBACK,
    "read from PostgreSQL; failed invalidations are kept and applied once Redis is back",
)
SESSION_FACTS = Use(
    "session_facts",
    Degrade.FALLBACK,
    "a spent or revoked refresh token is answered by PostgreSQL (its row) instead",
)
RATE_LIMIT = Use(
    "rate_limit",
    Degrade.FALLBACK,
    "in-process GCRA with the same limits, per instance, for AGORA_RATELIMIT_FALLBACK_S",
    # The limiter's own fallback period is its breaker: it leaves Redis alone after one error.
    guarded=False,
    timeout="ratelimit",
)
DELETED_USER_CHECK = Use(
    "deleted_user_check",
    Degrade.FALLBACK,
    "PostgreSQL answers whether the account still exists: a deleted account stays refused",
)
DELETED_USER_MARK = Use(
    "deleted_user_mark",
    Degrade.CLOSED,
    "account deletion is refused: a deletion that other services cannot learn must not commit",
    guarded=False,
    refusal="the account cannot be deleted right now; try again shortly",
)
DELETED_USER_UNMARK = Use(
    "deleted_user_unmark",
    Degrade.OPEN,
    "the mark of a deletion that failed expires on its own (one access-token lifetime)",
    guarded=False,
)
SESSION_CHECK = Use(
    "session_check",
    Degrade.FALLBACK,
    "PostgreSQL answers whether the session still has a live refresh token: an ended one "
    "stays refused",
)
SESSION_END_MARK = Use(
    "session_end_mark",
    Degrade.OPEN,
    "the session's refresh tokens are dead regardless; its access tokens live out their "
    "(at most 15 min) lifetime, logged",
)
LOGIN_BACKOFF = Use(
    "login_backoff",
    Degrade.OPEN,
    "logins are not slowed per identifier; the per-address limit and argon2 still bound guessing",
)
PRESENCE_WRITE = Use(
    "presence_write",
    Degrade.OPEN,
    "the socket stays open; the next heartbeat writes it again, stale fields age out",
    guarded=False,
)
PRESENCE_READ = Use(
    "presence_read",
    Degrade.CLOSED,
    "presence queries answer 503: whether someone is online cannot be known",
    guarded=False,
    refusal="presence is unavailable; try again shortly",
)
RECENT_WRITER_MARK = Use(
    "recent_writer_mark",
    Degrade.OPEN,
    "other instances may serve this writer a replica read for up to the replication lag",
)
RECENT_WRITER_CHECK = Use(
    "recent_writer_check",
    Degrade.FALLBACK,
    "the read goes to the primary",
)
EVENTS_PUBLISH = Use(
    "events_publish",
    Degrade.OPEN,
    "the event is not delivered live; the feed and the notifications list still have it",
)
EVENTS_SUBSCRIBE = Use(
    "events_subscribe",
    Degrade.OPEN,
    "realtime reconnects with backoff; events published meanwhile are not replayed",
    guarded=False,
)
ACTIVE_USERS = Use(
    "active_users",
    Degrade.OPEN,
    "agora_active_users keeps its last value; the ids wait in memory (bounded)",
)

ALL: tuple[Use, ...] = (
    CACHE,
    SESSION_FACTS,
    RATE_LIMIT,
    DELETED_USER_CHECK,
    DELETED_USER_MARK,
    DELETED_USER_UNMARK,
    SESSION_CHECK,
    SESSION_END_MARK,
    LOGIN_BACKOFF,
    PRESENCE_WRITE,
    PRESENCE_READ,
    RECENT_WRITER_MARK,
    RECENT_WRITER_CHECK,
    EVENTS_PUBLISH,
    EVENTS_SUBSCRIBE,
    ACTIVE_USERS,
)
