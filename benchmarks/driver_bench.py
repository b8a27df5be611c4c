"""asyncpg vs psycopg 3 (async, pooled) on the home-feed query: queries/s with 32 concurrent
callers on one event loop — the shape of one service process under load.

Run: python -m benchmarks.driver_bench [DATABASE_URL]  (needs seeded data: `agora seed`).
"""

from __future__ import annotations

import asyncio
import sys
import time

import asyncpg
import psycopg_pool

FEED = """
SELECT p.id, p.author_id, p.content, p.like_count, p.created_at
FROM posts p
WHERE p.author_id = $1
   OR p.author_id IN (SELECT followee_id FROM follows WHERE follower_id = $1)
ORDER BY p.created_at DESC, p.id DESC
LIMIT 20
"""
CONCURRENCY, SECONDS = 32, 5.0


async def run_asyncpg(url: str, users: list[object]) -> float:
    pool = await asyncpg.create_pool(url, min_size=10, max_size=10)
    done = 0
    deadline = time.perf_counter() + SECONDS

    async def worker(offset: int) -> None:
        nonlocal done
        i = offset
        while time.perf_counter() < deadline:
            async with pool.acquire() as conn:
                await conn.fetch(FEED, users[i % len(users)])
            done += 1
            i += CONCURRENCY

    await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))
    await pool.close()
    return done / SECONDS


async def run_psycopg(url: str, users: list[object]) -> float:
    query = FEED.replace("$1", "%(user)s")
    pool = psycopg_pool.AsyncConnectionPool(url, min_size=10, max_size=10, open=False)
    await pool.open()
    done = 0
    deadline = time.perf_counter() + SECONDS

    async def worker(offset: int) -> None:
        nonlocal done
        i = offset
        while time.perf_counter() < deadline:
            async with pool.connection() as conn:
                cur = await conn.execute(query, {"user": users[i % len(users)]}, prepare=True)
                await cur.fetchall()
            done += 1
            i += CONCURRENCY

    await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))
    await pool.close()
    return done / SECONDS


async def main(url: str) -> None:
    conn = await asyncpg.connect(url)
    users = [r["id"] for r in await conn.fetch("SELECT id FROM users LIMIT 500")]
    await conn.close()
    a = await run_asyncpg(url, users)
    b = await run_psycopg(url, users)
    print(f"feed query, {CONCURRENCY} concurrent callers, {SECONDS:.0f}s each, pool of 10")
    print(f"asyncpg          {a:8.0f} queries/s")
    print(f"psycopg 3 async  {b:8.0f} queries/s")
    print(f"ratio asyncpg/psycopg: {a / b:.2f}")


if __name__ == "__main__":
    asyncio.run(
        main(
            sys.argv[1]
            if len(sys.argv) > 1
            else "postgresql://postgres@127.0.0.1:5432/agora_scratch"
        )
    )
