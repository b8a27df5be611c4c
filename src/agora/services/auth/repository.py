"""All SQL of the auth service: users, refresh tokens, signing keys. Always parameterised.

Every function takes the connection of the caller's unit of work, so the caller decides what
commits together.
"""

from __future__ import annotations

import uuid

import asyncpg

from agora.db import Connection

# Fixed key of the advisory lock that serialises signing-key creation and rotation across
# every auth process sharing the database.
SIGNING_KEY_LOCK_ID = 0x61676F7261_01


# --- users -------------------------------------------------------------------------------


async def insert_user(
    conn: Connection, *, username: str, email: str, password_hash: str, display_name: str
) -> asyncpg.Record:
    """Raises asyncpg.UniqueViolationError when the username or e-mail is taken."""
    row = await conn.fetchrow(
        "INSERT INTO users (username, email, password_hash, display_name) "
        "VALUES ($1, $2, $3, $4) "
        "RETURNING id::text AS id, username, display_name, bio, created_at",
        username,
        email,
        password_hash,
        display_name,
    )
    if row is None:  # an INSERT without ON CONFLICT returns its row or raises
        raise RuntimeError("INSERT INTO users returned no row")
    return row


async def find_credentials_by_username(conn: Connection, username: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, password_hash FROM users WHERE lower(username) = lower($1)", username
    )


async def find_credentials_by_email(conn: Connection, email: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, password_hash FROM users WHERE lower(email) = lower($1)", email
    )


async def find_credentials_by_id(conn: Connection, user_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT id, password_hash FROM users WHERE id = $1", user_id)


async def delete_user(conn: Connection, user_id: uuid.UUID) -> bool:
    """Deletes the user and, by cascade, their sessions, posts, follows, likes, notifications."""
    deleted = await conn.fetchval("DELETE FROM users WHERE id = $1 RETURNING true", user_id)
    return bool(deleted)


async def update_password_hash(conn: Connection, *, user_id: uuid.UUID, password_hash: str) -> None:
    await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash)


async def get_public_user(conn: Connection, user_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id::text AS id, username, display_name, bio, created_at FROM users WHERE id = $1",
        user_id,
    )


async def get_own_user(conn: Connection, user_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id::text AS id, username, display_name, bio, created_at, email, updated_at "
        "FROM users WHERE id = $1",
        user_id,
    )


async def update_profile(
    conn: Connection,
    *,
    user_id: uuid.UUID,
    display_name: str | None,
    bio: str | None,
) -> asyncpg.Record | None:
    """NULL leaves a field as it is."""
    return await conn.fetchrow(
        "UPDATE users SET display_name = COALESCE($2, display_name), bio = COALESCE($3, bio), "
        "updated_at = now() WHERE id = $1 "
        "RETURNING id::text AS id, username, display_name, bio, created_at, email, updated_at",
        user_id,
        display_name,
        bio,
    )


# --- refresh tokens ----------------------------------------------------------------------


async def insert_refresh_token(
    conn: Connection,
    *,
    user_id: uuid.UUID,
    family_id: uuid.UUID,
    token_hash: bytes,
    ttl_s: int,
) -> None:
    await conn.execute(
        "INSERT INTO refresh_tokens (family_id, user_id, token_hash, expires_at) "
        "VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
        family_id,
        user_id,
        token_hash,
        float(ttl_s),
    )


async def lock_refresh_token(conn: Connection, token_hash: bytes) -> asyncpg.Record | None:
    """The token's row, locked until the transaction ends (concurrent rotations serialise)."""
    return await conn.fetchrow(
        "SELECT id, family_id, user_id, used_at, revoked_at, expires_at <= now() AS expired "
        "FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
        token_hash,
    )


async def spend_refresh_token(
    conn: Connection, *, token_id: uuid.UUID, successor_hash: bytes, ttl_s: int
) -> None:
    """Mark the token used and add its successor to the family, in one round trip."""
    await conn.execute(
        "WITH spent AS ("
        "  UPDATE refresh_tokens SET used_at = now() WHERE id = $1 RETURNING family_id, user_id"
        ") "
        "INSERT INTO refresh_tokens (family_id, user_id, token_hash, expires_at) "
        "SELECT family_id, user_id, $2, now() + make_interval(secs => $3) FROM spent",
        token_id,
        successor_hash,
        float(ttl_s),
    )


async def revoke_family(conn: Connection, family_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
        family_id,
    )


async def revoke_family_of_token(conn: Connection, token_hash: bytes) -> None:
    await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() "
        "WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1) "
        "AND revoked_at IS NULL",
        token_hash,
    )


# --- signing keys ------------------------------------------------------------------------


async def lock_signing_keys(conn: Connection) -> None:
    """Held until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", SIGNING_KEY_LOCK_ID)


async def has_active_signing_key(conn: Connection) -> bool:
    return bool(
        await conn.fetchval("SELECT EXISTS (SELECT 1 FROM signing_keys WHERE retired_at IS NULL)")
    )


async def insert_signing_key(
    conn: Connection, *, kid: str, private_key: bytes, public_jwk: str
) -> None:
    await conn.execute(
        "INSERT INTO signing_keys (kid, private_key, public_jwk) VALUES ($1, $2, $3::jsonb)",
        kid,
        private_key,
        public_jwk,
    )


async def newest_signing_key_age_s(conn: Connection) -> float | None:
    age: float | None = await conn.fetchval(
        "SELECT EXTRACT(EPOCH FROM now() - max(created_at))::float8 FROM signing_keys"
    )
    return age


async def all_signing_key_blobs(conn: Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch("SELECT kid, private_key FROM signing_keys")
    return rows


async def update_signing_key_blob(conn: Connection, *, kid: str, private_key: bytes) -> None:
    await conn.execute("UPDATE signing_keys SET private_key = $2 WHERE kid = $1", kid, private_key)


async def retire_signing_keys(conn: Connection, *, after_s: float) -> None:
    """Schedule the retirement of every active key ``after_s`` seconds from now."""
    await conn.execute(
        "UPDATE signing_keys SET retired_at = now() + make_interval(secs => $1) "
        "WHERE retired_at IS NULL",
        after_s,
    )


async def published_signing_keys(
    conn: Connection, *, retired_within_s: float
) -> list[asyncpg.Record]:
    """Active keys and those retired less than ``retired_within_s`` ago, newest first.

    ``retired_ago_s`` is negative for a key whose retirement is scheduled (a rotation keeps the
    old key signing until its successor has been published everywhere). It is measured on the
    database clock, so instances with skewed clocks
    still agree on when a key stops being published.
    """
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT kid, private_key, public_jwk::text AS public_jwk, created_at, "
        "EXTRACT(EPOCH FROM now() - retired_at)::float8 AS retired_ago_s "
        "FROM signing_keys "
        "WHERE retired_at IS NULL OR retired_at > now() - make_interval(secs => $1) "
        "ORDER BY created_at DESC, kid",
        retired_within_s,
    )
    return rows
