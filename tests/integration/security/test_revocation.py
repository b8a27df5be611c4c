"""The deleted-account mark against real Redis and PostgreSQL: the mark is read once per
request — by the rate limiter's round trip when it ran, else by the check itself."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from agora.config import Settings
from agora.db import Database
from agora.redis.access import RedisAccess
from agora.resilience import CircuitBreaker
from agora.security.middleware import deleted_users_store
from agora.security.revocation import DeletedUsers


@pytest.fixture
async def deleted_users(settings: Settings) -> AsyncIterator[DeletedUsers]:
    redis = Redis.from_url(settings.require_redis_url())
    db = Database(settings.require_database_url(), min_size=1, max_size=2)
    await db.connect()
    yield deleted_users_store(RedisAccess(redis, CircuitBreaker("redis")), db, settings)
    await db.close()
    await redis.aclose()


async def test_the_request_keeps_the_answer_the_limiter_read(
    deleted_users: DeletedUsers,
) -> None:
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    await deleted_users.mark(alice)
    assert await deleted_users.is_deleted(alice)

    # What the limiter read a moment ago is believed: no second read.
    assert not await deleted_users.is_deleted(alice, prefetched=False)
    await deleted_users.mark(bob)
    assert await deleted_users.is_deleted(bob, prefetched=True)
    # A request the limiter did not read for (fallback, allowlist) asks Redis itself.
    assert await deleted_users.is_deleted(alice, prefetched=None)
