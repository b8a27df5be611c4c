"""What the managed pool adds to a checkout: ``SELECT 1`` through a bare asyncpg pool vs
``Database.connection()`` (lifetime and health-check bookkeeping, leak stack capture, gauges,
query-duration histogram, breaker), sequentially (per-call cost) and with 32 concurrent callers
on one event loop (throughput), best of three runs each.

Run: python -m benchmarks.pool_bench [DATABASE_URL]  (default: the local test PostgreSQL)
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import asyncpg

from agora.db import Connection, Database
from agora.resilience.breaker import CircuitBreaker

CALLS, CONCURRENCY, RUNS = 5000, 32, 3

Acquire = Callable[[], AbstractAsyncContextManager[Connection]]


async def sequential(acquire: Acquire) -> tuple[float, float]:
    """(wall, client CPU) seconds per call; CPU is what the pool itself costs, and is far
    less disturbed than wall time by other work on a shared machine."""
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(CALLS):
        async with acquire() as conn:
            await conn.fetchval("SELECT 1")
    return (time.perf_counter() - started) / CALLS, (time.process_time() - cpu) / CALLS


async def concurrent(acquire: Acquire) -> float:
    async def worker() -> None:
        for _ in range(CALLS // CONCURRENCY):
            async with acquire() as conn:
                await conn.fetchval("SELECT 1")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return (CALLS // CONCURRENCY) * CONCURRENCY / (time.perf_counter() - started)


async def measure(name: str, acquire: Acquire) -> None:
    await sequential(acquire)  # warm up
    runs = [await sequential(acquire) for _ in range(RUNS)]
    wall, cpu = min(r[0] for r in runs), min(r[1] for r in runs)
    rate = max([await concurrent(acquire) for _ in range(RUNS)])
    print(
        f"{name:>28}: {wall * 1e6:6.1f} µs wall, {cpu * 1e6:6.1f} µs client CPU per "
        f"checkout+SELECT 1; {rate:6.0f} queries/s with 32 callers"
    )


async def main(url: str) -> None:
    bare = await asyncpg.create_pool(url, min_size=10, max_size=10)
    db = Database(url, min_size=10, max_size=10, breaker=CircuitBreaker("postgres"))
    await db.connect()
    no_leak_check = Database(url, min_size=10, max_size=10, leak_threshold_s=0)
    await no_leak_check.connect()
    try:

        def bare_acquire() -> AbstractAsyncContextManager[Connection]:
            return bare.acquire()

        await measure("bare asyncpg pool", bare_acquire)
        await measure("Database.connection()", db.connection)
        await measure("... without leak detection", no_leak_check.connection)
    finally:
        await bare.close()
        await db.close()
        await no_leak_check.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "postgresql://postgres@127.0.0.1/test"))
