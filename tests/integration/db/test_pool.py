"""The primary pool on the real test PostgreSQL: limits, acquire timeout, health check,
lifetime, leak detection, metrics, retries and the postgres breaker."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from agora.db import Database, DatabaseUnavailable
from agora.resilience.breaker import BreakerState, CircuitBreaker
from tests.conftest import free_port

RAISE_SERIALIZATION_FAILURE = (
    "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$"
)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, min_size=1, max_size=2, acquire_timeout_s=0.3)
    await database.connect()
    async with database.connection() as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS retry_probe (n int)")
        await conn.execute("TRUNCATE retry_probe")
    yield database
    await database.close()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_exhausted_pool_times_out_into_a_503_with_retry_after(db: Database) -> None:
    async with db.connection(), db.connection():
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(DatabaseUnavailable) as caught:
            async with db.connection():
                pass
        waited = loop.time() - started
    assert caught.value.status_code == 503
    assert caught.value.code == "unavailable"
    assert caught.value.headers["Retry-After"] == "1"
    assert 0.25 <= waited < 2.0
    # Exhaustion says nothing about the server's health: not a breaker failure.
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT 1") == 1


async def test_pool_never_exceeds_its_maximum(db: Database) -> None:
    async def hold() -> int:
        async with db.connection() as conn:
            await asyncio.sleep(0.05)
            return int(await conn.fetchval("SELECT pg_backend_pid()"))

    pids = await asyncio.gather(*(hold() for _ in range(8)))
    assert len(set(pids)) <= 2


async def test_a_connection_killed_while_idle_is_replaced_before_reuse(
    database_url: str,
) -> None:
    db = Database(database_url, min_size=1, max_size=1, health_check_after_idle_s=0.0)
    await db.connect()
    try:
        async with db.connection() as conn:
            victim = await conn.fetchval("SELECT pg_backend_pid()")
        killer = await asyncpg.connect(database_url)
        await killer.execute("SELECT pg_terminate_backend($1)", victim)
        await killer.close()
        await asyncio.sleep(0.1)
        async with db.connection() as conn:  # no error reaches the caller
            assert await conn.fetchval("SELECT pg_backend_pid()") != victim
    finally:
        await db.close()


async def test_connections_are_replaced_after_their_max_lifetime(database_url: str) -> None:
    db = Database(database_url, min_size=1, max_size=1, max_lifetime_s=0.2)
    await db.connect()
    try:
        async with db.connection() as conn:
            first = await conn.fetchval("SELECT pg_backend_pid()")
        await asyncio.sleep(0.3)
        async with db.connection() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") != first
    finally:
        await db.close()


async def test_statement_timeout_is_set_on_the_server(database_url: str) -> None:
    db = Database(database_url, min_size=1, max_size=1, command_timeout_s=10.0)
    await db.connect()
    try:
        async with db.connection() as conn:
            assert await conn.fetchval("SHOW statement_timeout") == "10s"
    finally:
        await db.close()


async def test_a_connection_held_too_long_is_reported_with_its_acquirer(
    database_url: str,
) -> None:
    db = Database(database_url, min_size=1, max_size=1, leak_threshold_s=0.2)
    await db.connect()
    before = sample("agora_errors_total", type="db_connection_leak")
    try:
        with capture_logs() as logs:
            async with db.connection():
                await asyncio.sleep(0.5)
        leaks = [e for e in logs if e["event"].startswith("database connection held too long")]
        assert len(leaks) == 1
        assert "test_a_connection_held_too_long_is_reported_with_its_acquirer" in str(
            leaks[0]["acquired_at"]
        )
        assert sample("agora_errors_total", type="db_connection_leak") == before + 1
        assert db.primary.leaks.leaks_reported == 1
    finally:
        await db.close()


async def test_pool_and_query_metrics(db: Database) -> None:
    before = sample("agora_db_query_duration_seconds_count", operation="select", pool="primary")
    async with db.connection() as conn:
        await conn.fetchval("SELECT 1")
        assert sample("agora_db_pool_connections", state="active", pool="primary") == 1
    await asyncio.sleep(0)  # query loggers run as callbacks
    after = sample("agora_db_query_duration_seconds_count", operation="select", pool="primary")
    assert after >= before + 1
    assert sample("agora_db_pool_connections", state="active", pool="primary") == 0
    assert sample("agora_db_pool_connections", state="idle", pool="primary") >= 1


# Retries: only where running the work again cannot apply a write twice.


class Flaky:
    """Unit of work that inserts a row, then fails the first ``failures`` times."""

    def __init__(self, failure: str, failures: int = 1) -> None:
        self.failure = failure
        self.failures = failures
        self.calls = 0

    async def __call__(self, conn: Any) -> int:
        self.calls += 1
        await conn.execute("INSERT INTO retry_probe VALUES ($1)", self.calls)
        if self.calls <= self.failures:
            if self.failure == "serialization":
                await conn.execute(RAISE_SERIALIZATION_FAILURE)
            else:  # the server drops this very connection
                await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return self.calls


async def rows(db: Database) -> list[int]:
    async with db.connection() as conn:
        return [r[0] for r in await conn.fetch("SELECT n FROM retry_probe ORDER BY n")]


async def test_a_serialization_failure_of_a_transaction_is_retried(db: Database) -> None:
    work = Flaky("serialization")
    assert await db.run(work, transaction=True) == 2
    assert await rows(db) == [2]  # the first attempt was rolled back entirely


async def test_a_serialization_failure_outside_a_transaction_is_not_retried(
    db: Database,
) -> None:
    # Two autocommit statements: the INSERT committed before the failure, so a retry would
    # insert twice.
    work = Flaky("serialization")
    with pytest.raises(asyncpg.SerializationError):
        await db.run(work)
    assert work.calls == 1
    assert await rows(db) == [1]


async def test_a_write_whose_connection_dropped_is_not_retried(db: Database) -> None:
    work = Flaky("disconnect")
    with pytest.raises(DatabaseUnavailable):
        await db.run(work, transaction=True)
    assert work.calls == 1


async def test_a_read_whose_connection_dropped_is_retried(db: Database) -> None:
    calls = 0

    async def read(conn: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return int(await conn.fetchval("SELECT 41 + 1"))

    assert await db.run(read, read_only=True) == 42
    assert calls == 2


# The postgres breaker: connectivity failures only.


async def test_breaker_opens_on_an_unreachable_server_then_fails_fast() -> None:
    breaker = CircuitBreaker("postgres", failure_threshold=3, window_s=10, open_s=30)
    dead = Database(
        f"postgresql://postgres@127.0.0.1:{free_port()}/x",
        breaker=breaker,
        min_size=0,
        max_size=2,
        acquire_timeout_s=1.0,
        retry_attempts=1,
    )
    await dead.connect()
    try:
        for _ in range(3):
            with pytest.raises(DatabaseUnavailable):
                await dead.fetchval("SELECT 1")
        assert breaker.state is BreakerState.OPEN
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(DatabaseUnavailable) as caught:
            await dead.fetchval("SELECT 1")
        assert loop.time() - started < 0.05
        assert 1 <= int(caught.value.headers["Retry-After"]) <= 30
    finally:
        await dead.close()


async def test_query_errors_do_not_count_against_the_breaker(database_url: str) -> None:
    breaker = CircuitBreaker("postgres", failure_threshold=1, window_s=10, open_s=30)
    db = Database(database_url, breaker=breaker, min_size=1, max_size=1)
    await db.connect()
    try:
        for _ in range(3):
            with pytest.raises(asyncpg.PostgresError):
                await db.fetchval("SELECT * FROM no_such_table")
            with pytest.raises(asyncpg.UniqueViolationError):
                await db.fetchval(
                    "DO $$ BEGIN RAISE EXCEPTION 'taken' USING ERRCODE = '23505'; END $$"
                )
        assert breaker.state is BreakerState.CLOSED
    finally:
        await db.close()


async def test_close_ends_in_time_though_a_connection_is_never_released(
    database_url: str,
) -> None:
    db = Database(database_url, min_size=1, max_size=1, close_timeout_s=0.5)
    await db.connect()
    taken, forever = asyncio.Event(), asyncio.Event()
    held: list[int] = []  # the server pid of the connection held

    async def hold_for_ever() -> None:
        async with db.connection() as conn:
            held.append(conn.get_server_pid())
            taken.set()
            await forever.wait()

    holder = asyncio.create_task(hold_for_ever())
    await taken.wait()
    started = time.monotonic()
    with capture_logs() as logs:
        await asyncio.wait_for(db.close(), timeout=5)  # asyncpg's own close waits for ever
    assert 0.4 <= time.monotonic() - started < 3
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "database pool did not close in time; its connections were cut"
    ]
    checker = await asyncpg.connect(database_url)
    try:  # cut, not left open on the server
        for _ in range(40):
            gone = not await checker.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", held[0]
            )
            if gone:
                break
            await asyncio.sleep(0.05)
        assert gone
    finally:
        await checker.close()
    holder.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await holder
