"""Argon2id password hashing, always off the event loop.

A hash costs tens of milliseconds of CPU and memory by design; run inline it would stall every
other request of the process, so hashing and verifying go to a worker thread. Verifying a login
for a user that does not exist runs the same argon2 work against a dummy hash, so response time
does not reveal which usernames exist.

Hashing is also bounded: at most ``concurrency`` hashes run at once (one per core is all the CPU
there is) and at most ``max_waiting`` wait for a turn. Beyond that a login is refused at once
with 503 + ``Retry-After`` instead of joining a queue it would leave only after its client gave
up: unbounded, a burst of logins at production cost (~180 ms each) queued for seconds, every
other request of the process starved behind it, and the load test's auth service collapsed.

The wait is bounded in time too (``max_wait_s``), because a count alone is a time only on the
host it was sized on: the soak's 32 waiting behind 2 hashes that each ran at a third of a core
waited 16-30 s, past the gateway's 15-s timeout, so the client was gone (504) and the hash
still ran, its CPU spent on an answer nobody read, while the client's retry queued behind it
(docs/performance.md). A sign-in that has not started hashing within ``max_wait_s`` is refused
like one that found the queue full, before any hashing.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import secrets
from collections.abc import Callable
from importlib.resources import files
from typing import TypeVar

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from agora.config import Settings
from agora.errors import ServiceUnavailable
from agora.observability.metrics import PASSWORD_HASH_REJECTIONS


class PasswordHashingBusy(ServiceUnavailable):
    code = "overloaded"

    def __init__(self) -> None:
        super().__init__(
            "too many sign-ins at once; try again in a moment", headers={"Retry-After": "1"}
        )


T = TypeVar("T")


class PasswordHasher:
    def __init__(
        self,
        *,
        time_cost: int,
        memory_kib: int,
        parallelism: int,
        concurrency: int = 2,
        max_waiting: int = 32,
        max_wait_s: float = 2.0,
    ) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            type=argon2.Type.ID,
        )
        self._dummy_hash: str | None = None
        self._turns = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._max_waiting = max_waiting
        self._max_wait_s = max_wait_s
        self._admitted = 0  # running + waiting

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordHasher:
        return cls(
            time_cost=settings.password_hash_time_cost,
            memory_kib=settings.password_hash_memory_kib,
            parallelism=settings.password_hash_parallelism,
            concurrency=settings.effective_password_hash_concurrency,
            max_waiting=settings.password_hash_max_waiting,
            max_wait_s=settings.password_hash_max_wait_s,
        )

    async def hash(self, password: str) -> str:
        return await self._in_turn(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; ``None`` (no such user) costs the same and is False."""
        if password_hash is None:
            await self._in_turn(self._verify, await self.dummy_hash(), password)
            return False
        return await self._in_turn(self._verify, password_hash, password)

    async def _in_turn(self, work: Callable[[str, str], T] | Callable[[str], T], *args: str) -> T:
        """``work`` on a worker thread once a turn is free; refused when the queue is full or
        no turn came within ``max_wait_s``."""
        if self._admitted >= self._concurrency + self._max_waiting:
            PASSWORD_HASH_REJECTIONS.inc()
            raise PasswordHashingBusy
        self._admitted += 1
        try:
            try:
                async with asyncio.timeout(self._max_wait_s):
                    await self._turns.acquire()
            except TimeoutError:
                PASSWORD_HASH_REJECTIONS.inc()
                raise PasswordHashingBusy from None
            try:
                return await asyncio.to_thread(work, *args)  # type: ignore[arg-type]
            finally:
                self._turns.release()
        finally:
            self._admitted -= 1

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
