"""Tokens of deleted accounts and ended sessions: refused by every service at once, not when
they expire.

Access tokens are verified locally, so deleting an account or ending a session would leave its
tokens working for up to 15 minutes. Auth therefore writes a mark in Redis (one key, kept for as
long as any such token can still be valid) and every authenticated request checks it, in the
rate limiter's round trip (measured in docs/security.md). When Redis cannot answer, PostgreSQL
decides (does the user row, or a live refresh token of the session, still exist?), so an
outage never reopens the hole; while the ``redis`` breaker is open the check goes straight to
PostgreSQL instead of waiting on a dead Redis first.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from agora.db import Database
from agora.events import Event, publish
from agora.ids import parse_uuid
from agora.observability.logging import get_logger
from agora.redis import keys, uses
from agora.redis.access import RedisAccess, RedisUnavailable, Use

log = get_logger(__name__)


class _MarkChecks:
    """A mark per id in Redis, checked per request; PostgreSQL answers when Redis cannot."""

    _check_use: Use
    _absent_sql: str
    """``SELECT EXISTS (...)`` of what must still be there for the id's tokens to be valid."""

    def __init__(
        self, access: RedisAccess, db: Database, *, ttl_s: int, events_channel: str
    ) -> None:
        self._access = access
        self._db = db
        self._ttl_s = ttl_s
        self._events_channel = events_channel

    @staticmethod
    def mark_key(ident: str) -> str:
        raise NotImplementedError

    async def _is_marked(self, ident: str) -> bool:
        key = self.mark_key(ident)
        try:
            return bool(await self._access.call(self._check_use, lambda r: r.exists(key)))
        except RedisUnavailable as exc:
            self._access.warn(exc)  # one line per outage, not per request
        parsed = parse_uuid(ident)
        if parsed is None:
            return True  # names nothing that exists
        async with self._db.connection() as conn:
            exists = await conn.fetchval(self._absent_sql, parsed)
        return not exists


class DeletedUsers(_MarkChecks):
    _check_use = uses.DELETED_USER_CHECK
    # The one query shared infrastructure makes: every service reads the same users table.
    _absent_sql = "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)"

    @staticmethod
    def mark_key(ident: str) -> str:
        return keys.deleted_user(ident)

    async def mark(self, user_id: str) -> None:
        """Fails closed (503 ``unavailable``): a deletion that cannot be announced must not
        commit."""
        key, ttl_s = self.mark_key(user_id), self._ttl_s
        await self._access.require(uses.DELETED_USER_MARK, lambda r: r.set(key, b"1", ex=ttl_s))

    async def announce(self, user_id: str) -> None:
        """After the deletion commits: realtime closes the account's open sockets (a new
        handshake is refused by the mark). Best effort, like every event: a socket that misses
        it only receives, and the account's data is gone."""
        event = Event("account.deleted", {}, recipient_id=user_id)
        await publish(self._access, self._events_channel, event)

    async def unmark(self, user_id: str) -> None:
        """Undo ``mark`` when the deletion itself failed (best effort: the mark expires)."""
        key = self.mark_key(user_id)
        await self._access.attempt(uses.DELETED_USER_UNMARK, lambda r: r.delete(key), otherwise=0)

    async def is_deleted(self, user_id: str, *, prefetched: bool | None = None) -> bool:
        """``prefetched``: the mark's state the rate limiter already read for this request
        in its own round trip, so authentication does not ask Redis again."""
        if prefetched is not None:
            return prefetched
        return await self._is_marked(user_id)


class RevokedSessions(_MarkChecks):
    """An access token names its session (``sid``, the refresh-token family). Ending a session
    (logout, refresh-token reuse, a password change, a revoke from the session list) writes one
    mark per session and publishes ``session.ended`` so that every realtime instance closes
    that session's sockets."""

    _check_use = uses.SESSION_CHECK
    # A family with no live row left was revoked, or its account deleted.
    _absent_sql = (
        "SELECT EXISTS (SELECT 1 FROM refresh_tokens WHERE family_id = $1 AND revoked_at IS NULL)"
    )

    @staticmethod
    def mark_key(ident: str) -> str:
        return keys.revoked_session(ident)

    async def end(self, user_id: str, session_ids: Sequence[str]) -> bool:
        """Mark ``session_ids`` (already revoked in PostgreSQL) and tell realtime. False when
        Redis could not take the marks: the refresh tokens are dead regardless, and the
        checks fall back to PostgreSQL only while they cannot reach Redis themselves, so the
        access tokens may then live out their (at most 15 minutes) lifetime — logged."""
        if not session_ids:
            return True
        marks, ttl_s = [self.mark_key(sid) for sid in session_ids], self._ttl_s

        async def set_marks(redis: Redis) -> None:
            async with redis.pipeline(transaction=False) as pipe:
                for key in marks:
                    pipe.set(key, b"1", ex=ttl_s)
                await pipe.execute()

        try:
            await self._access.call(uses.SESSION_END_MARK, set_marks)
            marked = True
        except RedisUnavailable as exc:
            marked = False
            log.warning(
                "ended sessions not marked; their access tokens expire on their own",
                user_id=user_id,
                sessions=len(session_ids),
                error=repr(exc.cause),
            )
        event = Event("session.ended", {"session_ids": list(session_ids)}, recipient_id=user_id)
        await publish(self._access, self._events_channel, event)
        return marked

    async def is_revoked(self, session_id: str | None, *, prefetched: bool | None = None) -> bool:
        """``prefetched``: the mark's state the rate limiter read in its own round trip. A
        token without a session (minted by a tool or a test) has nothing to revoke."""
        if session_id is None:
            return False
        if prefetched is not None:
            return prefetched
        return await self._is_marked(session_id)
