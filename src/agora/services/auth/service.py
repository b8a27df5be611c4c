"""Auth domain logic: accounts, logins, refresh-token rotation, profiles.

Refresh tokens are opaque random strings stored only as SHA-256 digests. A login starts a token
family; each refresh spends its token and adds the successor to the family. Presenting a spent
token again means it was copied: the whole family is revoked, so neither the thief nor the
victim can continue that session without logging in again.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from agora.cache import CacheService, Loaded, stamp
from agora.db import Connection, Database
from agora.errors import (
    ApiError,
    Conflict,
    Forbidden,
    NotFound,
    Unauthenticated,
)
from agora.ids import parse_uuid
from agora.observability.logging import get_logger
from agora.observability.metrics import RATELIMIT_REJECTIONS, USERS_REGISTERED
from agora.security.backoff import LoginBackoff, Purpose
from agora.security.passwords import PasswordHasher
from agora.security.revocation import DeletedUsers, RevokedSessions
from agora.security.tokens import TokenIssuer
from agora.services.auth import repository as repo
from agora.services.auth.keys import KeyStore
from agora.services.auth.schemas import (
    ProfileUpdate,
    TokenPair,
    UserCreate,
    UserProfile,
    UserPublic,
)

log = get_logger(__name__)

_CONFLICT_MESSAGES = {
    "users_username_lower_key": "that username is already taken",
    "users_email_lower_key": "that e-mail address is already registered",
}


class _Rotation(enum.Enum):
    ROTATED = enum.auto()
    INVALID = enum.auto()
    REUSED = enum.auto()


def refresh_token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


_Profile = TypeVar("_Profile", UserProfile, UserPublic)
_UserQuery = Callable[[Connection, uuid.UUID], Awaitable[asyncpg.Record | None]]


async def check_backoff(backoff: LoginBackoff, purpose: Purpose, identifier: str) -> None:
    """Counts this password check; 429 while ``identifier`` is backing off after failed ones
    (checked and counted in one step: see agora.security.backoff)."""
    wait_s = await backoff.admit(purpose, identifier)
    if wait_s:
        RATELIMIT_REJECTIONS.labels("login_account").inc()
        raise ApiError(
            "too many failed attempts for this account; try again later",
            status_code=429,
            code="login_backoff",
            headers={"Retry-After": str(wait_s)},
        )


def _account_gone() -> Unauthenticated:
    return Unauthenticated("the account of this token no longer exists", code="invalid_token")


class AuthService:
    def __init__(  # noqa: PLR0913  # keyword-only collaborators, wired once in parts.py
        self,
        *,
        db: Database,
        hasher: PasswordHasher,
        keystore: KeyStore,
        issuer: TokenIssuer,
        refresh_ttl_s: int,
        backoff: LoginBackoff,
        deleted_users: DeletedUsers,
        revoked_sessions: RevokedSessions,
        cache: CacheService,
        profile_ttl_s: float,
    ) -> None:
        self._db = db
        self._cache = cache
        self._profile_ttl_s = profile_ttl_s
        self._hasher = hasher
        self._keystore = keystore
        self._issuer = issuer
        self._refresh_ttl_s = refresh_ttl_s
        self._backoff = backoff
        self._deleted_users = deleted_users
        self._revoked_sessions = revoked_sessions

    async def register(self, data: UserCreate) -> UserPublic:
        password_hash = await self._hasher.hash(data.password)
        try:
            async with self._db.connection() as conn:
                row = await repo.insert_user(
                    conn,
                    username=data.username,
                    email=data.email,
                    password_hash=password_hash,
                    display_name=data.display_name,
                )
        except asyncpg.UniqueViolationError as exc:
            # The unique indexes decide, not a prior SELECT: two racing sign-ups cannot both win.
            message = _CONFLICT_MESSAGES.get(
                exc.constraint_name or "", "that username or e-mail address is already registered"
            )
            raise Conflict(message) from None
        USERS_REGISTERED.inc()
        log.info("user registered", user_id=row["id"])
        return UserPublic.model_validate(dict(row))

    async def login(self, *, login: str, password: str) -> TokenPair:
        """``login`` is a username or an e-mail address (usernames cannot contain ``@``)."""
        # Checked and counted before anything else, whether the login names an account or
        # not (an unknown one behaves alike): see agora.security.backoff.
        await self._check_backoff("login", login)
        find = repo.find_credentials_by_email if "@" in login else repo.find_credentials_by_username
        async with self._db.connection() as conn:
            row = await find(conn, login)
        stored_hash: str | None = row["password_hash"] if row is not None else None
        # No connection is held while argon2 runs; an unknown user costs the same work.
        if row is None or not await self._hasher.verify(stored_hash, password):
            raise Unauthenticated("wrong username or password", code="invalid_credentials")
        await self._backoff.succeeded("login", login)
        user_id: uuid.UUID = row["id"]
        new_hash = None
        if stored_hash is not None and self._hasher.needs_rehash(stored_hash):
            new_hash = await self._hasher.hash(password)
        refresh_token = new_refresh_token()
        family_id = uuid.uuid4()
        async with self._db.transaction() as conn:
            if new_hash is not None:
                await repo.update_password_hash(conn, user_id=user_id, password_hash=new_hash)
            await repo.insert_refresh_token(
                conn,
                user_id=user_id,
                family_id=family_id,
                token_hash=refresh_token_digest(refresh_token),
                ttl_s=self._refresh_ttl_s,
            )
        return self._token_pair(str(user_id), refresh_token, str(family_id))

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Spend ``refresh_token`` and return a new pair from the same family."""
        digest = refresh_token_digest(refresh_token)
        known = await self._cache.recall("session", digest.hex())
        if known is not None:
            await self._refuse_known(known, digest)
        successor = new_refresh_token()
        user_id: uuid.UUID | None = None
        session_id = ""
        async with self._db.transaction() as conn:
            # FOR UPDATE: of two concurrent refreshes with one token, the second waits, then
            # sees the token spent and treats it as reuse.
            row = await repo.lock_refresh_token(conn, refresh_token_digest(refresh_token))
            if row is None or row["revoked_at"] is not None:
                outcome = _Rotation.INVALID
            elif row["used_at"] is not None:
                # Reuse wins over expiry: the successors may still be alive.
                await repo.revoke_family(conn, row["family_id"])
                outcome = _Rotation.REUSED
            elif row["expired"]:
                outcome = _Rotation.INVALID
            else:
                await repo.spend_refresh_token(
                    conn,
                    token_id=row["id"],
                    successor_hash=refresh_token_digest(successor),
                    ttl_s=self._refresh_ttl_s,
                )
                user_id, session_id = row["user_id"], str(row["family_id"])
                outcome = _Rotation.ROTATED
        # Raised only after the block so that the family's revocation is committed.
        if outcome is _Rotation.ROTATED:
            assert row is not None
            await self._remember_session(digest, f"spent {row['family_id']}")
        if outcome is _Rotation.REUSED:
            assert row is not None
            await self._remember_session(digest, "revoked")
            await self._revoked_sessions.end(str(row["user_id"]), [str(row["family_id"])])
            log.warning(
                "refresh token reused; session revoked",
                user_id=str(row["user_id"]),
                family_id=str(row["family_id"]),
            )
            raise Unauthenticated(
                "this refresh token was already used; the session has been revoked",
                code="refresh_token_reused",
            )
        if outcome is _Rotation.INVALID or user_id is None:
            raise Unauthenticated(
                "the refresh token is invalid or expired", code="invalid_refresh_token"
            )
        return self._token_pair(str(user_id), successor, session_id)

    async def logout(self, refresh_token: str) -> None:
        """Revoke the token's whole family, and end its access tokens and sockets everywhere.
        An unknown (or already ended) token is silently ignored and leaves nothing behind: only
        a live session's token gets a "revoked" fact in Redis (any string given to logout used
        to add a key kept for a refresh lifetime)."""
        digest = refresh_token_digest(refresh_token)
        async with self._db.connection() as conn:
            ended = await repo.revoke_family_of_token(conn, digest)
        if ended is not None:
            await self._remember_session(digest, "revoked")
            await self._revoked_sessions.end(ended["user_id"], [ended["family_id"]])

    async def _remember_session(self, digest: bytes, fact: str) -> None:
        """Session data lives exactly as long as what it describes: a spent or revoked token
        matters while its family can still have a live token, at most one refresh lifetime
        from now (the successor just issued, or the presented token itself)."""
        await self._cache.remember("session", digest.hex(), fact, ttl_s=self._refresh_ttl_s)

    async def _refuse_known(self, fact: str, digest: bytes) -> None:
        """Answer a token the cache knows is spent or revoked without locking its row: the
        same answer the database would give, and a replayed token costs no transaction."""
        kind, _, family = fact.partition(" ")
        if kind == "spent" and (family_id := parse_uuid(family)) is not None:
            async with self._db.connection() as conn:
                owner = await repo.revoke_family(conn, family_id)
            await self._remember_session(digest, "revoked")
            if owner is not None:
                await self._revoked_sessions.end(owner, [str(family_id)])
            log.warning("refresh token reused; session revoked", family_id=family)
            raise Unauthenticated(
                "this refresh token was already used; the session has been revoked",
                code="refresh_token_reused",
            )
        raise Unauthenticated(
            "the refresh token is invalid or expired", code="invalid_refresh_token"
        )

    async def delete_account(self, user_id: str, password: str) -> None:
        """Delete the caller's account after checking their password again (a stolen access
        token alone cannot destroy an account). Its refresh tokens go with it, and its access
        tokens are refused by every service from the moment the deletion commits."""
        parsed = parse_uuid(user_id)
        if parsed is None:
            raise _account_gone()
        async with self._db.connection() as conn:
            row = await repo.find_credentials_by_id(conn, parsed)
        if row is None:
            raise _account_gone()
        account = str(parsed)
        await self._check_backoff("reauth", account)
        if not await self._hasher.verify(row["password_hash"], password):
            raise Forbidden("the password is wrong", code="invalid_credentials")
        await self._backoff.succeeded("reauth", account)
        try:
            async with self._db.transaction() as conn:
                # Cascades to its refresh tokens: every session of the account ends with it.
                deleted = await repo.delete_user(conn, parsed)
                # Announced before the commit: if Redis cannot take the mark, nothing is
                # deleted (the mark fails closed: 503 unavailable, Retry-After).
                if deleted:
                    await self._deleted_users.mark(account)
        except BaseException:
            await self._deleted_users.unmark(account)
            raise
        if not deleted:  # gone meanwhile (a concurrent delete): nothing was marked
            raise _account_gone()
        await self._deleted_users.announce(account)
        log.info("account deleted", user_id=account)

    async def _check_backoff(self, purpose: Purpose, identifier: str) -> None:
        await check_backoff(self._backoff, purpose, identifier)

    async def own_profile(self, user_id: str) -> UserProfile:
        profile = await self._cached_profile("own", user_id, UserProfile, repo.get_own_user)
        if profile is None:
            raise _account_gone()
        return profile

    async def update_profile(self, user_id: str, update: ProfileUpdate) -> UserProfile:
        async def apply(conn: Connection, parsed: uuid.UUID) -> asyncpg.Record | None:
            return await repo.update_profile(
                conn, user_id=parsed, display_name=update.display_name, bio=update.bio
            )

        row = await self._user_row(user_id, apply, read_only=False)
        if row is None:
            raise _account_gone()
        await self._cache.invalidate([stamp("user", row["id"])])
        return UserProfile.model_validate(dict(row))

    async def public_profile(self, user_id: str) -> UserPublic:
        profile = await self._cached_profile("public", user_id, UserPublic, repo.get_public_user)
        if profile is None:
            raise NotFound("no such user")
        return profile

    async def _cached_profile(
        self, view: str, user_id: str, model: type[_Profile], query: _UserQuery
    ) -> _Profile | None:
        """A profile through the cache (5 min), valid until the user's stamp moves."""
        parsed = parse_uuid(user_id)
        if parsed is None:
            return None  # names no one: neither a query nor a cache key

        async def load(storing: bool) -> Loaded[_Profile]:
            # A fill reads the primary: rows from a lagging replica stored under current
            # stamps would stay stale for a whole TTL. Uncached reads may use a replica.
            async with self._db.connection(
                read_only=not storing, writes=False, user_id=parsed
            ) as conn:
                row = await query(conn, parsed)
            if row is None:
                return Loaded(None, None)
            return Loaded(model.model_validate(dict(row)), [stamp("user", parsed)])

        return await self._cache.get_or_load(
            "profile", f"{view}:{parsed}", model, load, ttl_s=self._profile_ttl_s
        )

    async def _user_row(
        self, user_id: str, query: _UserQuery, *, read_only: bool
    ) -> asyncpg.Record | None:
        """The user's row from ``query``; None for a malformed id, which names no one. Reads
        may go to a replica, except right after that user changed their profile."""
        parsed = parse_uuid(user_id)
        if parsed is None:
            return None
        async with self._db.connection(read_only=read_only, user_id=parsed) as conn:
            return await query(conn, parsed)

    def _token_pair(self, user_id: str, refresh_token: str, session_id: str) -> TokenPair:
        access_token = self._issuer.issue(user_id, self._keystore.current(), session_id=session_id)
        return TokenPair(
            access_token=access_token, expires_in=self._issuer.ttl_s, refresh_token=refresh_token
        )
