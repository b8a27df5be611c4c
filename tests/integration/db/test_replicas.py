"""Read routing against a real streaming replica started by the test (initdb, pg_basebackup).

Replay on the replica is paused so that it is visibly behind: a read that sees a fresh write
came from the primary, one that does not came from the replica.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from redis.asyncio import Redis

from agora.db import Connection, Database
from agora.db.routing import RecentWriters
from agora.redis.access import RedisAccess
from agora.resilience import CircuitBreaker
from tests.pgcluster import PgCluster, needs_pg_tools, new_primary, new_replica, remove

pytestmark = needs_pg_tools


@pytest.fixture(scope="module")
def clusters() -> Iterator[tuple[PgCluster, PgCluster]]:
    primary = new_primary()
    try:
        replica = new_replica(primary)
        yield primary, replica
        replica.stop_quietly()
    finally:
        remove(primary)


@pytest.fixture
async def redis(redis_url: str, clean_state: None) -> AsyncIterator[Redis]:  # noqa: ARG001  # requested for its side effect
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def make_db(clusters: tuple[PgCluster, PgCluster], redis: Redis | None) -> Database:
    primary, replica = clusters
    db = Database(
        primary.url,
        replica_urls=[replica.url],
        writers=RecentWriters(
            None if redis is None else RedisAccess(redis, CircuitBreaker("redis")), window_s=30.0
        ),
        min_size=1,
        max_size=3,
        replica_cooldown_s=60.0,
    )
    await db.connect()
    return db


@pytest.fixture
async def paused(clusters: tuple[PgCluster, PgCluster]) -> AsyncIterator[None]:
    primary, replica = clusters
    conn = await asyncpg.connect(primary.url)
    await conn.execute("CREATE TABLE IF NOT EXISTS notes (author text, body text)")
    await conn.close()
    standby = await asyncpg.connect(replica.url)
    # Wait for the table to reach the replica, then freeze replay.
    for _ in range(100):
        if await standby.fetchval("SELECT to_regclass('notes') IS NOT NULL"):
            break
        await asyncio.sleep(0.05)
    await standby.execute("SELECT pg_wal_replay_pause()")
    yield
    await standby.execute("SELECT pg_wal_replay_resume()")
    await standby.close()


async def count_notes(db: Database, body: str, user: str | None) -> int:
    async with db.connection(read_only=True, user_id=user) as conn:
        return int(await conn.fetchval("SELECT count(*) FROM notes WHERE body = $1", body))


async def test_reads_go_to_the_replica_and_writes_to_the_primary(
    clusters: tuple[PgCluster, PgCluster], redis: Redis
) -> None:
    db = await make_db(clusters, redis)
    try:
        async with db.connection(read_only=True) as conn:
            assert await conn.fetchval("SELECT pg_is_in_recovery()") is True
        async with db.connection() as conn:
            assert await conn.fetchval("SELECT pg_is_in_recovery()") is False
    finally:
        await db.close()


@pytest.mark.usefixtures("paused")
async def test_a_user_reads_their_own_write_on_any_instance(
    clusters: tuple[PgCluster, PgCluster], redis: Redis
) -> None:
    writer_instance = await make_db(clusters, redis)
    other_instance = await make_db(clusters, redis)  # its own local markers: only Redis links them
    alice, bob, body = str(uuid.uuid4()), str(uuid.uuid4()), f"hello {uuid.uuid4()}"
    try:
        async with writer_instance.connection(user_id=alice) as conn:
            await conn.execute("INSERT INTO notes VALUES ($1, $2)", alice, body)
        assert await count_notes(writer_instance, body, alice) == 1
        assert await count_notes(other_instance, body, alice) == 1
        # Someone else reads the (paused, so lagging) replica: the routing is real.
        assert await count_notes(other_instance, body, bob) == 0
    finally:
        await writer_instance.close()
        await other_instance.close()


async def test_a_cache_fill_reads_the_primary_without_pinning_the_reader(
    clusters: tuple[PgCluster, PgCluster], redis: Redis
) -> None:
    """A GET that misses the cache fills it from the primary (the call posts' and auth's
    loaders make: ``read_only=False, writes=False``), but that is a read: the viewer is not
    marked as a writer, so their next read still goes to the replica, on every instance."""
    db = await make_db(clusters, redis)
    other_instance = await make_db(clusters, redis)
    viewer = str(uuid.uuid4())

    async def in_recovery(conn: Connection) -> bool:
        return bool(await conn.fetchval("SELECT pg_is_in_recovery()"))

    try:
        filled_from_replica = await db.run(
            in_recovery, read_only=False, writes=False, user_id=viewer
        )
        assert filled_from_replica is False  # the fill really read the primary
        assert await redis.exists(f"agora:db:wrote:{viewer}") == 0
        for instance in (db, other_instance):
            assert await instance.run(in_recovery, read_only=True, user_id=viewer) is True
        # The contrast: a real write with the same user does pin them to the primary.
        await db.run(in_recovery, user_id=viewer)
        assert await redis.exists(f"agora:db:wrote:{viewer}") == 1
        assert await other_instance.run(in_recovery, read_only=True, user_id=viewer) is False
    finally:
        await db.close()
        await other_instance.close()


@pytest.mark.usefixtures("paused")
async def test_without_redis_the_writing_instance_still_reads_its_users_writes(
    clusters: tuple[PgCluster, PgCluster],
) -> None:
    db = await make_db(clusters, None)
    alice, body = str(uuid.uuid4()), f"solo {uuid.uuid4()}"
    try:
        async with db.transaction(user_id=alice) as conn:
            await conn.execute("INSERT INTO notes VALUES ($1, $2)", alice, body)
        assert await count_notes(db, body, alice) == 1
    finally:
        await db.close()


async def test_reads_fall_back_to_the_primary_when_the_replica_is_down(
    clusters: tuple[PgCluster, PgCluster], redis: Redis
) -> None:
    _, replica = clusters
    db = await make_db(clusters, redis)
    try:
        async with db.connection(read_only=True) as conn:  # a pooled replica connection
            assert await conn.fetchval("SELECT pg_is_in_recovery()") is True
        replica.stop("immediate")
        # The pooled connection is dead: the read is retried, then served by the primary.
        in_recovery = await db.run(
            lambda conn: conn.fetchval("SELECT pg_is_in_recovery()"), read_only=True
        )
        assert in_recovery is False
        # New reads skip the replica during its cooldown, without a failed connect each.
        for _ in range(3):
            async with db.connection(read_only=True) as conn:
                assert await conn.fetchval("SELECT pg_is_in_recovery()") is False
    finally:
        await db.close()  # the replica stays down: this is the module's last test
