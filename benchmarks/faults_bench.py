"""What the fault switch costs at the call boundary while no fault is set: client CPU per
call for a PostgreSQL checkout + ``SELECT 1`` and a Redis ``PING``, with and without the switch
installed (interleaved, best of three runs), and the bare ``before_call`` itself.

Run: python -m benchmarks.faults_bench [DATABASE_URL [REDIS_URL]]
(default: the local test PostgreSQL and Redis db 11)
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable

from agora.db import Database
from agora.flags import FaultSwitch, FeatureFlags
from agora.redis.client import create_redis

CALLS, RUNS, BARE_CALLS = 5000, 3, 200_000


async def cpu_per_call(call: Callable[[], Awaitable[object]], calls: int) -> float:
    cpu = time.process_time()
    for _ in range(calls):
        await call()
    return (time.process_time() - cpu) / calls


async def main(database_url: str, redis_url: str) -> None:
    flags = FeatureFlags.from_file(None)
    switch = FaultSwitch(flags, instance_id="bench", service="posts", allowed=True)
    bare = await cpu_per_call(lambda: switch.before_call("postgres"), BARE_CALLS)
    print(f"before_call with no fault set: {bare * 1e9:.0f} ns")

    plain_db = Database(database_url, min_size=1, max_size=1)
    faulty_db = Database(database_url, min_size=1, max_size=1, faults=switch)
    plain_redis = create_redis(redis_url)
    faulty_redis = create_redis(redis_url, faults=switch)
    await plain_db.connect()
    await faulty_db.connect()
    try:
        results: dict[str, list[float]] = {}
        for _ in range(RUNS):
            for name, call in (
                ("postgres, no switch", lambda: plain_db.fetchval("SELECT 1")),
                ("postgres, switch", lambda: faulty_db.fetchval("SELECT 1")),
                ("redis, no switch", plain_redis.ping),
                ("redis, switch", faulty_redis.ping),
            ):
                results.setdefault(name, []).append(await cpu_per_call(call, CALLS))
        for name, runs in results.items():
            print(f"{name:22s} {min(runs) * 1e6:7.1f} µs client CPU per call (best of {RUNS})")
    finally:
        await plain_db.close()
        await faulty_db.close()
        await plain_redis.aclose()
        await faulty_redis.aclose()
        flags.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(
        main(
            args[0] if args else "postgresql://postgres@127.0.0.1:5432/postgres",
            args[1] if len(args) > 1 else "redis://127.0.0.1:6379/11",
        )
    )
