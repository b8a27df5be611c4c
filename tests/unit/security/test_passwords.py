"""Argon2id hashing: verify, rehash detection, the dummy hash for unknown users, no loop stalls."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from agora.config import Settings
from agora.security.passwords import PasswordHasher, PasswordHashingBusy

FAST = {"time_cost": 1, "memory_kib": 8192, "parallelism": 1}


@pytest.fixture
def hasher() -> PasswordHasher:
    return PasswordHasher(**FAST)


async def test_hash_is_argon2id_salted_and_verifies(hasher: PasswordHasher) -> None:
    first = await hasher.hash("correct horse battery")
    second = await hasher.hash("correct horse battery")

    assert first.startswith("$argon2id$v=19$m=8192,t=1,p=1$")
    assert first != second  # a fresh salt each time
    assert await hasher.verify(first, "correct horse battery")
    assert await hasher.verify(second, "correct horse battery")
    assert not await hasher.verify(first, "correct horse batterY")
    assert not await hasher.verify(first, "")


async def test_a_stored_value_that_is_not_a_hash_never_verifies(hasher: PasswordHasher) -> None:
    assert not await hasher.verify("not-a-hash", "not-a-hash")
    assert not await hasher.verify("", "")


async def test_needs_rehash_when_the_parameters_change(hasher: PasswordHasher) -> None:
    stored = await hasher.hash("correct horse battery")

    assert not hasher.needs_rehash(stored)
    assert PasswordHasher(time_cost=2, memory_kib=8192, parallelism=1).needs_rehash(stored)
    assert PasswordHasher(time_cost=1, memory_kib=16384, parallelism=1).needs_rehash(stored)
    assert PasswordHasher(time_cost=1, memory_kib=8192, parallelism=2).needs_rehash(stored)
    assert hasher.needs_rehash("not-a-hash")


async def test_unknown_user_path_verifies_against_a_real_dummy_hash(
    hasher: PasswordHasher,
) -> None:
    dummy = await hasher.dummy_hash()

    assert dummy.startswith("$argon2id$v=19$m=8192,t=1,p=1$")
    assert not hasher.needs_rehash(dummy)
    assert await hasher.dummy_hash() is dummy  # computed once
    assert not await hasher.verify(None, "correct horse battery")
    assert not await hasher.verify(None, "")


async def test_unknown_user_costs_about_as_much_as_a_wrong_password() -> None:
    hasher = PasswordHasher(time_cost=2, memory_kib=32768, parallelism=1)
    stored = await hasher.hash("correct horse battery")
    await hasher.dummy_hash()

    # CPU time of this process, not wall time: other work on a shared machine slows the wall
    # clock of either path but not the argon2 work each one does. Interleaved, best of five.
    async def cost(password_hash: str | None) -> float:
        started = time.process_time()
        await hasher.verify(password_hash, "wrong password!")
        return time.process_time() - started

    timings: dict[str | None, list[float]] = {stored: [], None: []}
    for _ in range(5):
        for password_hash in (stored, None):
            timings[password_hash].append(await cost(password_hash))
    known, unknown = min(timings[stored]), min(timings[None])

    assert 0.5 < unknown / known < 2.0, (known, unknown)


def test_production_defaults_are_the_configured_argon2id_parameters() -> None:
    defaults = Settings.model_construct()  # field defaults only, no environment
    hasher = PasswordHasher.from_settings(defaults)

    stored = hasher._hasher.hash("correct horse battery")

    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


async def test_hashing_does_not_block_the_event_loop() -> None:
    hasher = PasswordHasher(time_cost=3, memory_kib=65536, parallelism=1)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        started = time.perf_counter()
        stored = await hasher.hash("correct horse battery")
        await hasher.verify(stored, "correct horse battery")
        elapsed = time.perf_counter() - started
    finally:
        task.cancel()
    # The loop kept running while argon2 worked in a thread (inline it would tick ~0 times).
    assert elapsed > 0.02
    assert ticks >= 5


async def test_hashing_is_bounded_and_the_excess_is_refused_at_once() -> None:
    bounded = PasswordHasher(**FAST, concurrency=1, max_waiting=2)
    stored = await bounded.hash("correct horse battery")
    results = await asyncio.gather(
        *(bounded.verify(stored, "correct horse battery") for _ in range(6)),
        return_exceptions=True,
    )
    refused = [result for result in results if isinstance(result, PasswordHashingBusy)]
    assert results.count(True) == 3  # one running + two waiting
    assert len(refused) == 3
    assert refused[0].status_code == 503
    assert refused[0].code == "overloaded"
    assert refused[0].headers == {"Retry-After": "1"}
    # the turns are handed back: a later sign-in is served again
    assert await bounded.verify(stored, "correct horse battery")


async def test_a_sign_in_that_waits_longer_than_the_bound_is_refused_before_hashing() -> None:
    bounded = PasswordHasher(**FAST, concurrency=1, max_waiting=50, max_wait_s=0.05)
    stored = await bounded.hash("pw")
    started: list[str] = []
    real_verify = bounded._verify

    def slow(password_hash: str, password: str) -> bool:
        started.append(password)
        time.sleep(0.3)  # one hash longer than the bound: the others cannot get a turn in time
        return real_verify(password_hash, password)

    bounded._verify = slow  # type: ignore[method-assign]
    results = await asyncio.gather(
        *(bounded.verify(stored, "pw") for _ in range(4)), return_exceptions=True
    )

    assert results[0] is True
    assert all(isinstance(result, PasswordHashingBusy) for result in results[1:])
    assert started == ["pw"], "the refused sign-ins never hashed"
    # the turn is handed back: a later sign-in is served again
    assert await bounded.verify(stored, "pw")


async def test_no_more_hashes_run_at_once_than_the_concurrency() -> None:
    bounded = PasswordHasher(**FAST, concurrency=2, max_waiting=50)
    running = peak = 0
    real_verify = bounded._verify

    def observed(password_hash: str, password: str) -> bool:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        time.sleep(0.02)
        running -= 1
        return real_verify(password_hash, password)

    bounded._verify = observed  # type: ignore[method-assign]
    stored = await bounded.hash("pw")
    assert all(await asyncio.gather(*(bounded.verify(stored, "pw") for _ in range(10))))
    assert peak == 2


def test_the_concurrency_defaults_to_the_usable_cores() -> None:
    assert Settings().effective_password_hash_concurrency == len(os.sched_getaffinity(0))
    assert Settings(password_hash_concurrency=3).effective_password_hash_concurrency == 3
