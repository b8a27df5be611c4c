"""Argon2id password hashing, always off the event loop.

A hash costs tens of milliseconds of CPU and memory by design; run inline it would stall every
other request of the process, so hashing and verifying go to a worker thread. Verifying a login
for a user that does not exist runs the same argon2 work against a dummy hash, so response time
does not reveal which usernames exist.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import secrets
from importlib.resources import files

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from agora.config import Settings


class PasswordHasher:
    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            type=argon2.Type.ID,
        )
        self._dummy_hash: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordHasher:
        return cls(
            time_cost=settings.password_hash_time_cost,
            memory_kib=settings.password_hash_memory_kib,
            parallelism=settings.password_hash_parallelism,
        )

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; ``None`` (no such user) costs the same and is False."""
        if password_hash is None:
            await asyncio.to_thread(self._verify, await self.dummy_hash(), password)
            return False
        return await asyncio.to_thread(self._verify, password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with other parameters than the configured ones."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True

    async def dummy_hash(self) -> str:
        """A real hash with the current parameters, of a password nobody knows."""
        if self._dummy_hash is None:
            # Computed once, lazily: two concurrent first calls both hash, which is harmless.
            self._dummy_hash = await self.hash(secrets.token_urlsafe(32))
        return self._dummy_hash

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False


# The 30,000 most common passwords of the zxcvbn project's frequency list (MIT; drawn from
# leaked password corpora), lower-cased, one per line. Loaded on first use (~30 ms, ~2 MB).
_COMMON_PASSWORDS_FILE = "data/common-passwords.txt.gz"


@functools.cache
def _common_passwords() -> frozenset[str]:
    raw = (files("agora.security") / _COMMON_PASSWORDS_FILE).read_bytes()
    return frozenset(gzip.decompress(raw).decode().split())


def is_common_password(password: str) -> bool:
    """True for a password on the shipped list, compared without case."""
    return password.lower() in _common_passwords()
