"""The home feed's two plans (merge per followee, walk of recent posts) return the same pages
over a real seeded database: same rows, same order, ties on created_at broken by id, and every
cursor page of a reader with few followees and of one with many, to the end of the feed."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import asyncpg
import psycopg
import pytest
from rich.progress import Progress

from agora.config import Settings
from agora.devstack.seed import seed
from agora.services.posts import timeline_repository as timelines
from agora.services.posts.pagination import Cursor
from tests.conftest import scratch_database

PLANS = {"merge": 10**9, "walk": 0, "auto": timelines.HEAVY_READER_FOLLOWEES}
PAGE = 7  # small, so the feeds span many cursor pages

# A heavy reader, above the threshold; a light one keeps its seeded follows.
_HEAVY_READER = """
INSERT INTO follows (follower_id, followee_id)
SELECT heavy.id, u.id
FROM (SELECT id FROM users ORDER BY id LIMIT 1) AS heavy
CROSS JOIN LATERAL (SELECT id FROM users WHERE id <> heavy.id ORDER BY id LIMIT %(n)s) AS u
ON CONFLICT DO NOTHING
"""
# Ties: a third of the posts share their created_at with others, so only id orders them.
_TIES = """
UPDATE posts SET created_at = date_trunc('hour', created_at)
WHERE get_byte(uuid_send(id), 0) < 85
"""


@pytest.fixture(scope="module")
def seeded_url(postgres_admin_url: str) -> Iterator[str]:
    name = f"agora_feed_plans_{os.getpid()}"
    with scratch_database(postgres_admin_url, name) as url:
        settings = Settings(
            database_url=url,
            password_hash_time_cost=1,
            password_hash_memory_kib=8192,
            password_hash_parallelism=1,
        )
        import asyncio  # noqa: PLC0415  # the module fixture is sync; seed is async

        with Progress(disable=True) as progress:
            asyncio.run(
                seed(settings, users=300, posts=3000, follows_per_user=5, celebrities=2,
                     progress=progress)
            )  # fmt: skip
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(_HEAVY_READER, {"n": timelines.HEAVY_READER_FOLLOWEES + 50})
            conn.execute(_TIES)
            conn.execute("ANALYZE")
        yield url


async def _whole_feed(
    conn: asyncpg.Connection, reader: uuid.UUID, threshold: int
) -> list[list[uuid.UUID]]:
    pages: list[list[uuid.UUID]] = []
    cursor: Cursor | None = None
    while True:
        rows = await timelines.feed_page(
            conn, reader_id=reader, cursor=cursor, limit=PAGE, heavy_reader_followees=threshold
        )
        if not rows:
            return pages
        pages.append([row.id for row in rows])
        cursor = Cursor(rows[-1].created_at, rows[-1].id)


_READERS = """
SELECT follower_id, count(*) AS n FROM follows GROUP BY follower_id
ORDER BY count(*) DESC, follower_id LIMIT 1
"""
_LIGHT = """
SELECT follower_id, count(*) FROM follows GROUP BY follower_id
HAVING count(*) < 10 ORDER BY follower_id LIMIT 1
"""
_EXPECTED = """
SELECT id FROM posts
WHERE author_id = $1 OR author_id IN (SELECT followee_id FROM follows WHERE follower_id = $1)
ORDER BY created_at DESC, id DESC
"""


@pytest.mark.parametrize("reader_kind", ["light", "heavy"])
async def test_both_plans_page_identically_to_the_end(seeded_url: str, reader_kind: str) -> None:
    conn = await asyncpg.connect(seeded_url)
    try:
        query = _READERS if reader_kind == "heavy" else _LIGHT
        reader, followees = await conn.fetchrow(query)  # type: ignore[misc]
        if reader_kind == "heavy":
            assert followees >= timelines.HEAVY_READER_FOLLOWEES
        else:
            assert followees < timelines.HEAVY_READER_FOLLOWEES
        expected = [record["id"] for record in await conn.fetch(_EXPECTED, reader)]
        # Run each plan more than five times, so asyncpg's statement reaches its generic plan.
        feeds = {
            plan: await _whole_feed(conn, reader, threshold) for plan, threshold in PLANS.items()
        }
        assert len(feeds["merge"]) > 5
        assert feeds["walk"] == feeds["merge"] == feeds["auto"]
        assert [post for page in feeds["walk"] for post in page] == expected
        assert all(len(page) == PAGE for page in feeds["walk"][:-1])
    finally:
        await conn.close()
