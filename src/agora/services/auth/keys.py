"""The access-token signing keys: kept in PostgreSQL, shared by every auth instance.

A key is published before anyone signs with it. A rotation adds the new key and schedules the
old one's retirement ``activation_s`` later (one reload interval plus the JWKS consumers'
refetch cooldown); instances sign with the oldest key not yet retired. By the time the new key
signs, every auth instance publishes it and a consumer holding an older JWKS is allowed to
refetch when it first meets the new ``kid``, so a rotation never gets a valid token refused.

Besides the signing key, every instance publishes the keys retired less than
``access_token_ttl_s + RETIRED_KEY_GRACE_S`` ago: every token an old key signed has expired by
then, with a margin for instances that still sign with it until their next reload. Instances
reload every ``signing_key_refresh_s`` seconds, and at once (at most once per cooldown) when a
token names a ``kid`` they do not know.

Private keys are stored encrypted with ``AGORA_KEY_ENCRYPTION_KEY`` (``KeyCipher``); without it
(development only) as plain PKCS#8 PEM. ``agora keys encrypt`` (re-)encrypts every stored key
with the first configured encryption key: the migration path from plain rows, and the second
half of rotating the encryption key itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric import rsa

from agora.config import Settings
from agora.db import Connection, Database
from agora.observability.logging import get_logger
from agora.security.keys import (
    KeyCipher,
    SigningKey,
    generate_signing_key,
    public_key_from_jwk,
)
from agora.services.auth import repository as repo

log = get_logger(__name__)

RETIRED_KEY_GRACE_S = 300


@dataclass(frozen=True, slots=True)
class _PublishedKey:
    kid: str
    public_key: rsa.RSAPublicKey
    jwk: dict[str, Any]
    # Local monotonic deadline after which a retired key is no longer trusted; None = active.
    unpublish_at: float | None

    def published(self, now: float) -> bool:
        return self.unpublish_at is None or now < self.unpublish_at


class KeyStore:
    """Signing key for new tokens, public keys for the JWKS and for auth's own verification.

    Implements the ``KeyResolver`` protocol of ``agora.security.tokens``.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._window_s = float(settings.access_token_ttl_s + RETIRED_KEY_GRACE_S)
        self._refresh_s = settings.signing_key_refresh_s
        self._cooldown_s = settings.jwks_refetch_cooldown_s
        self._cipher = KeyCipher.from_settings(settings)
        self._db: Database | None = None
        self._current: SigningKey | None = None
        self._keys: dict[str, _PublishedKey] = {}
        self._attempted_at = float("-inf")
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def ensure_active_key(self, db: Database) -> SigningKey:
        """Create the first key if there is none, load the keys, and keep reading from ``db``."""
        self._db = db
        await _create_key_if_none(db, self._cipher)
        await self.reload()
        return self.current()

    def current(self) -> SigningKey:
        if self._current is None:
            raise RuntimeError("KeyStore.ensure_active_key() has not been awaited")
        return self._current

    def published_jwks(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [entry.jwk for entry in self._keys.values() if entry.published(now)]

    async def public_key(self, kid: str) -> rsa.RSAPublicKey | None:
        key = self._lookup(kid)
        if key is None and time.monotonic() - self._attempted_at >= self._cooldown_s:
            await self._shared_reload()
            key = self._lookup(kid)
        return key

    async def reload(self) -> None:
        db = self._require_db()
        rows = await self._fetch(db)
        if not any(row["retired_ago_s"] is None for row in rows):
            # Every key was retired by hand: heal instead of failing every login.
            await _create_key_if_none(db, self._cipher)
            rows = await self._fetch(db)
        self._apply(rows)

    def start(self) -> None:
        """Reload periodically in the background until ``stop()``."""
        if self._task is None:
            self._task = asyncio.create_task(self._refresh_loop(), name="signing-key-refresh")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _lookup(self, kid: str) -> rsa.RSAPublicKey | None:
        entry = self._keys.get(kid)
        if entry is None or not entry.published(time.monotonic()):
            return None
        return entry.public_key

    def _require_db(self) -> Database:
        if self._db is None:
            raise RuntimeError("KeyStore.ensure_active_key() has not been awaited")
        return self._db

    async def _fetch(self, db: Database) -> list[asyncpg.Record]:
        async with db.connection() as conn:
            return await repo.published_signing_keys(conn, retired_within_s=self._window_s)

    def _apply(self, rows: list[asyncpg.Record]) -> None:
        now = time.monotonic()
        keys: dict[str, _PublishedKey] = {}
        signing_row = self._signing_row(rows)
        current: SigningKey | None = None
        if signing_row is not None:
            kid = signing_row["kid"]
            current = (
                self._current
                if self._current is not None and self._current.kid == kid
                else self._cipher.open(kid, bytes(signing_row["private_key"]))
            )
        for row in rows:  # newest first
            kid = row["kid"]
            retired_ago_s: float | None = row["retired_ago_s"]
            jwk: dict[str, Any] = json.loads(row["public_jwk"])
            previous = self._keys.get(kid)
            unpublish_at = None
            if retired_ago_s is not None:
                unpublish_at = now + self._window_s - retired_ago_s
            keys[kid] = _PublishedKey(
                kid=kid,
                public_key=previous.public_key if previous else public_key_from_jwk(jwk),
                jwk=jwk,
                unpublish_at=unpublish_at,
            )
        if current is None:
            raise RuntimeError("no active signing key in the database")
        if self._current is not None and current.kid != self._current.kid:
            log.info("signing key changed", kid=current.kid, previous_kid=self._current.kid)
        self._keys, self._current = keys, current

    @staticmethod
    def _signing_row(rows: list[asyncpg.Record]) -> asyncpg.Record | None:
        """The oldest key whose retirement has not come: the one every consumer has had longest."""
        unretired = [
            row for row in rows if row["retired_ago_s"] is None or row["retired_ago_s"] < 0
        ]
        return unretired[-1] if unretired else None  # rows are newest first

    async def _shared_reload(self) -> None:
        """Reload unless another caller did while we waited; failures keep the last keys."""
        attempted_before = self._attempted_at
        async with self._lock:
            if self._attempted_at != attempted_before:
                return
            self._attempted_at = time.monotonic()
            try:
                await self.reload()
            except Exception as exc:
                log.warning("signing key reload failed; keeping the last keys", error=repr(exc))

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            await self._rotate_on_schedule()
            await self._shared_reload()

    async def _rotate_on_schedule(self) -> None:
        try:
            await rotate_signing_key_if_due(self._require_db(), self._settings)
        except Exception as exc:
            log.warning("scheduled signing-key rotation failed; will retry", error=repr(exc))


async def _create_key_if_none(db: Database, cipher: KeyCipher) -> None:
    """Race-safe across processes: the advisory lock makes check-then-insert atomic."""
    async with db.connection() as conn:
        if await repo.has_active_signing_key(conn):
            return
    # RSA generation takes tens of milliseconds of CPU: keep it off the event loop, and do it
    # before taking the lock so the lock is held only for the insert.
    key = await asyncio.to_thread(generate_signing_key)
    async with db.transaction() as conn:
        await repo.lock_signing_keys(conn)
        if await repo.has_active_signing_key(conn):
            return
        await _insert_key(conn, key, cipher)
    log.info("signing key created", kid=key.kid, encrypted=cipher.encrypts)


def activation_delay_s(settings: Settings) -> float:
    """How old a new key must be before it signs: every instance has published it by then,
    and a consumer's refetch cooldown has run out."""
    return settings.signing_key_refresh_s + settings.jwks_refetch_cooldown_s


async def rotate_signing_key(db: Database, settings: Settings) -> SigningKey:
    """Retire the current key and add a new one, in one transaction (``agora keys rotate``).

    The new key is published at once and signs after ``activation_delay_s``; the retired key
    stays published until every token it signed has expired.
    """
    key = await _rotate(db, settings, only_if_older_than_s=None)
    assert key is not None
    return key


async def rotate_signing_key_if_due(db: Database, settings: Settings) -> SigningKey | None:
    """The scheduled rotation: rotate only when the newest key is older than
    ``AGORA_SIGNING_KEY_ROTATION_S``. Every auth instance asks once per reload interval; the
    advisory lock and a second look under it let exactly one of them rotate."""
    if not await _newest_key_older_than(db, settings.signing_key_rotation_s):
        return None  # the common case: one cheap query, no RSA key generated
    return await _rotate(db, settings, only_if_older_than_s=settings.signing_key_rotation_s)


async def _rotate(
    db: Database, settings: Settings, *, only_if_older_than_s: float | None
) -> SigningKey | None:
    key = await asyncio.to_thread(generate_signing_key)
    async with db.transaction() as conn:
        await repo.lock_signing_keys(conn)
        if only_if_older_than_s is not None:
            age_s = await repo.newest_signing_key_age_s(conn)
            if age_s is not None and age_s < only_if_older_than_s:
                return None  # another instance rotated while we generated
        await repo.retire_signing_keys(conn, after_s=activation_delay_s(settings))
        await _insert_key(conn, key, KeyCipher.from_settings(settings))
    log.info(
        "signing key rotated",
        kid=key.kid,
        signs_after_s=activation_delay_s(settings),
        previous_keys_published_for_s=settings.access_token_ttl_s + RETIRED_KEY_GRACE_S,
    )
    return key


async def _newest_key_older_than(db: Database, age_s: float) -> bool:
    async with db.connection() as conn:
        newest_s = await repo.newest_signing_key_age_s(conn)
    return newest_s is not None and newest_s >= age_s


async def encrypt_signing_keys(db: Database, settings: Settings) -> tuple[int, int]:
    """Encrypt every stored private key with the first ``AGORA_KEY_ENCRYPTION_KEY``
    (``agora keys encrypt``). Returns (keys re-encrypted, of which were plain PEM)."""
    cipher = KeyCipher.from_settings(settings)
    plain = 0
    async with db.transaction() as conn:
        await repo.lock_signing_keys(conn)
        rows = await repo.all_signing_key_blobs(conn)
        for row in rows:
            stored = bytes(row["private_key"])
            plain += KeyCipher.is_plaintext(stored)
            sealed = cipher.reseal(row["kid"], stored)
            await repo.update_signing_key_blob(conn, kid=row["kid"], private_key=sealed)
    log.info("signing keys encrypted", keys=len(rows), were_plaintext=plain)
    return len(rows), plain


async def _insert_key(conn: Connection, key: SigningKey, cipher: KeyCipher) -> None:
    await repo.insert_signing_key(
        conn, kid=key.kid, private_key=cipher.seal(key), public_jwk=json.dumps(key.public_jwk())
    )
