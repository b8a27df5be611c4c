"""Tokens of deleted accounts and ended sessions: refused by every service at once, not when
they expire.

Access tokens are verified locally, so deleting an account would leave its tokens working for
up to 15 minutes. Auth therefore marks a deleted user in Redis (one key, kept for as long as
any token of the user can still be valid) before the deletion commits, and every
authenticated request checks the mark: one ``EXISTS`` round trip per request, measured in
docs/security.md. When Redis cannot answer, the check falls back to PostgreSQL (does the user
row still exist?), so an outage never reopens the hole; while the ``redis`` breaker is open the
check goes straight to PostgreSQL instead of waiting on a dead Redis first.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from agora.db import Database
from agora.events import Event, publish
from agora.ids import parse_uuid
from agora.observability.logging import get_logger
from agora.resilience import CircuitBreaker, CircuitOpenError

log = get_logger(__name__)

# Every Redis key of this module is built from these two prefixes.
_PREFIX = "agora:deleted-user:"
_SESSION_PREFIX = "agora:revoked-session:"
_WARN_EVERY_S = 10.0


class DeletedUsers:
    def __init__(
        self,
        redis: Redis,
        db: Database,
        *,
        ttl_s: int,
        breaker: CircuitBreaker,
        events_channel: str,
        publish_timeout_s: float,
    ) -> None:
        self._redis = redis
        self._db = db
        self._ttl_s = ttl_s
        self._breaker = breaker
        self._events_channel = events_channel
        self._publish_timeout_s = publish_timeout_s
        self._warned_at = float("-inf")

    @staticmethod
    def mark_key(user_id: str) -> str:
        return f"{_PREFIX}{user_id}"

    async def mark(self, user_id: str) -> None:
        """Raises ``RedisError``: a deletion that cannot be announced must not commit."""
        await self._redis.set(self.mark_key(user_id), b"1", ex=self._ttl_s)

    async def announce(self, user_id: str) -> None:
        """After the deletion commits: realtime closes the account's open sockets (a new
        handshake is refused by the mark). Best effort, like every event: a socket that misses
        it only receives, and the account's data is gone."""
        event = Event("account.deleted", {}, recipient_id=user_id)
        await publish(self._redis, self._events_channel, event, timeout_s=self._publish_timeout_s)

    async def unmark(self, user_id: str) -> None:
        """Undo ``mark`` when the deletion itself failed."""
        try:
            await self._redis.delete(self.mark_key(user_id))
        except RedisError as exc:
            log.warning("could not clear a deletion mark", user_id=user_id, error=repr(exc))

    async def is_deleted(self, user_id: str, *, prefetched: bool | None = None) -> bool:
        """``prefetched``: the mark's state the rate limiter already read for this request
        in its own round trip, so authentication does not ask Redis again."""
        if prefetched is not None:
            return prefetched
        try:
            with self._breaker.guard():
                return bool(await self._redis.exists(self.mark_key(user_id)))
        except (RedisError, CircuitOpenError) as exc:
            now = time.monotonic()
            if now - self._warned_at >= _WARN_EVERY_S:  # one line per outage, not per request
                self._warned_at = now
                log.warning("deleted-users check falls back to PostgreSQL", error=repr(exc))
        parsed = parse_uuid(user_id)
        if parsed is None:
            return True  # names no account
        # The one query shared infrastructure makes: every service reads the same users table.
        async with self._db.connection() as conn:
            exists = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)", parsed
            )
        return not exists


class RevokedSessions:
    """Access tokens of ended sessions: refused by every service at once, not when they expire.

    An access token names its session (``sid``, the refresh-token family). Ending a session
    (logout, refresh-token reuse, a password change, a revoke from the session list) writes
    one mark per session, kept as long as any access token of it can be valid, and publishes
    ``session.ended`` so that every realtime instance closes that session's sockets. Every
    authenticated request checks the mark in the rate limiter's round trip (no extra one);
    when Redis cannot answer, the refresh tokens in PostgreSQL decide.
    """

    def __init__(
        self,
        redis: Redis,
        db: Database,
        *,
        ttl_s: int,
        breaker: CircuitBreaker,
        events_channel: str,
        publish_timeout_s: float,
    ) -> None:
        self._redis = redis
        self._db = db
        self._ttl_s = ttl_s
        self._breaker = breaker
        self._events_channel = events_channel
        self._publish_timeout_s = publish_timeout_s
        self._warned_at = float("-inf")

    @staticmethod
    def mark_key(session_id: str) -> str:
        return f"{_SESSION_PREFIX}{session_id}"

    async def end(self, user_id: str, session_ids: Sequence[str]) -> bool:
        """Mark ``session_ids`` (already revoked in PostgreSQL) and tell realtime. False when
        Redis could not take the marks: the refresh tokens are dead regardless, and the
        checks fall back to PostgreSQL only while they cannot reach Redis themselves, so the
        access tokens may then live out their (at most 15 minutes) lifetime — logged."""
        if not session_ids:
            return True
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for session_id in session_ids:
                    pipe.set(self.mark_key(session_id), b"1", ex=self._ttl_s)
                await pipe.execute()
            marked = True
        except (RedisError, OSError) as exc:
            marked = False
            log.warning(
                "ended sessions not marked; their access tokens expire on their own",
                user_id=user_id,
                sessions=len(session_ids),
                error=repr(exc),
            )
        event = Event("session.ended", {"session_ids": list(session_ids)}, recipient_id=user_id)
        await publish(self._redis, self._events_channel, event, timeout_s=self._publish_timeout_s)
        return marked

    async def is_revoked(self, session_id: str | None, *, prefetched: bool | None = None) -> bool:
        """``prefetched``: the mark's state the rate limiter read in its own round trip. A
        token without a session (minted by a tool or a test) has nothing to revoke."""
        if session_id is None:
            return False
        if prefetched is not None:
            return prefetched
        try:
            with self._breaker.guard():
                return bool(await self._redis.exists(self.mark_key(session_id)))
        except (RedisError, CircuitOpenError) as exc:
            now = time.monotonic()
            if now - self._warned_at >= _WARN_EVERY_S:
                self._warned_at = now
                log.warning("ended-sessions check falls back to PostgreSQL", error=repr(exc))
        parsed = parse_uuid(session_id)
        if parsed is None:
            return True  # names no session
        # A family with no live row left was revoked, or its account deleted.
        async with self._db.connection() as conn:
            live = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM refresh_tokens "
                "WHERE family_id = $1 AND revoked_at IS NULL)",
                parsed,
            )
        return not live
