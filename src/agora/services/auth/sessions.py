"""The caller's own sessions: list them, end one, and change the password (which ends all the
others). A session is one login's refresh-token family; its access tokens carry its id
(``sid``), so ending it also ends them and its WebSockets on every instance
(``agora.security.revocation.RevokedSessions``)."""

from __future__ import annotations

import uuid

from agora.db import Database
from agora.errors import Forbidden, NotFound, Unauthenticated
from agora.ids import parse_uuid
from agora.observability.logging import get_logger
from agora.security.backoff import LoginBackoff
from agora.security.passwords import PasswordHasher
from agora.security.revocation import RevokedSessions
from agora.security.tokens import Principal
from agora.services.auth import repository as repo
from agora.services.auth.schemas import SessionList, SessionPublic
from agora.services.auth.service import check_backoff

log = get_logger(__name__)


def _account_gone() -> Unauthenticated:
    return Unauthenticated("the account of this token no longer exists", code="invalid_token")


def _no_session() -> NotFound:
    # The same answer for another user's session, an unknown one and an ended one: a caller
    # learns nothing about sessions that are not theirs.
    return NotFound("you have no such session")


class SessionService:
    def __init__(
        self,
        *,
        db: Database,
        hasher: PasswordHasher,
        backoff: LoginBackoff,
        revoked_sessions: RevokedSessions,
    ) -> None:
        self._db = db
        self._hasher = hasher
        self._backoff = backoff
        self._revoked = revoked_sessions

    async def list(self, principal: Principal) -> SessionList:
        user_id = _user_id(principal)
        # The primary: a session list must show the login of a moment ago.
        async with self._db.connection(read_only=False, writes=False) as conn:
            rows = await repo.live_sessions(conn, user_id)
        return SessionList(
            items=[
                SessionPublic(**dict(row), current=row["id"] == principal.session_id)
                for row in rows
            ]
        )

    async def revoke(self, principal: Principal, session_id: str) -> None:
        user_id = _user_id(principal)
        family_id = parse_uuid(session_id)
        if family_id is None:
            raise _no_session()
        async with self._db.connection() as conn:
            revoked = await repo.revoke_session(conn, user_id=user_id, family_id=family_id)
        if not revoked:
            raise _no_session()
        await self._revoked.end(str(user_id), [str(family_id)])
        log.info("session revoked", user_id=str(user_id), session_id=str(family_id))

    async def change_password(self, principal: Principal, *, current: str, new: str) -> int:
        """Check ``current`` (with the login backoff), store ``new`` and end every other
        session; returns how many ended. A token without a session id ends them all."""
        user_id = _user_id(principal)
        async with self._db.connection() as conn:
            row = await repo.find_credentials_by_id(conn, user_id)
        if row is None:
            raise _account_gone()
        account = str(user_id)
        await check_backoff(self._backoff, "reauth", account)
        if not await self._hasher.verify(row["password_hash"], current):
            raise Forbidden("the current password is wrong", code="invalid_credentials")
        await self._backoff.succeeded("reauth", account)
        new_hash = await self._hasher.hash(new)
        keep = parse_uuid(principal.session_id or "")
        async with self._db.transaction() as conn:
            await repo.update_password_hash(conn, user_id=user_id, password_hash=new_hash)
            ended = await repo.revoke_other_sessions(conn, user_id=user_id, keep=keep)
        await self._revoked.end(account, ended)
        log.info("password changed", user_id=account, sessions_ended=len(ended))
        return len(ended)


def _user_id(principal: Principal) -> uuid.UUID:
    parsed = parse_uuid(principal.user_id)
    if parsed is None:
        raise _account_gone()
    return parsed
