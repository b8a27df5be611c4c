"""Each use of Redis behaves as ``agora.redis.uses`` declares once a real redis-server is
killed: a use that fails open or falls back carries on (quickly), one that fails closed
refuses with 503; and the services show it: login and reads go on, account deletion and
presence are refused."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from agora.config import Settings
from agora.errors import ServiceUnavailable
from agora.redis import uses
from agora.redis.access import Degrade, RedisAccess, Use
from agora.redis.client import create_redis
from agora.resilience import BreakerState, CircuitBreaker
from tests.integration.auth.conftest import (
    PASSWORD,
    auth,  # noqa: F401
)
from tests.integration.realtime.conftest import serve  # noqa: F401
from tests.redis_servers import RedisProcess
from tests.security.conftest import System, system  # noqa: F401

OPEN_OR_FALLBACK = [use for use in uses.ALL if use.degrade is not Degrade.CLOSED]
CLOSED = [use for use in uses.ALL if use.degrade is Degrade.CLOSED]
TIMEOUT_S = 0.2


@pytest.fixture
async def dead_access(own_redis: RedisProcess) -> AsyncIterator[RedisAccess]:
    """An access layer whose redis-server worked, then was killed."""
    client = create_redis(own_redis.url(), socket_timeout_s=TIMEOUT_S)
    access = RedisAccess(
        client,
        CircuitBreaker("redis-policy-test", failure_threshold=1000),
        socket_timeout_s=TIMEOUT_S,
        ratelimit_timeout_s=TIMEOUT_S,
    )
    assert await client.set("agora:probe", b"1")
    own_redis.kill()
    yield access
    await client.aclose()


def test_every_use_declares_what_happens_without_redis() -> None:
    assert len({use.name for use in uses.ALL}) == len(uses.ALL)
    for use in uses.ALL:
        assert use.without_redis, use.name
    assert {use.name for use in CLOSED} == {"deleted_user_mark", "presence_read"}


@pytest.mark.parametrize("use", OPEN_OR_FALLBACK, ids=lambda use: use.name)
async def test_a_use_that_fails_open_carries_on_within_its_timeout(
    dead_access: RedisAccess, use: Use
) -> None:
    started = time.monotonic()
    fallback: bytes | str | None = "fallback"
    answer = await dead_access.attempt(use, lambda r: r.get("agora:probe"), otherwise=fallback)
    assert answer == "fallback"
    assert time.monotonic() - started < TIMEOUT_S + 0.5
    with pytest.raises(ValueError, match="does not fail closed"):
        await dead_access.require(use, lambda r: r.get("agora:probe"))


@pytest.mark.parametrize("use", CLOSED, ids=lambda use: use.name)
async def test_a_use_that_fails_closed_refuses_with_503(dead_access: RedisAccess, use: Use) -> None:
    with pytest.raises(ServiceUnavailable) as refused:
        await dead_access.require(use, lambda r: r.get("agora:probe"))
    assert refused.value.status_code == 503
    assert refused.value.message == use.refusal
    assert refused.value.headers["Retry-After"] == "5"
    with pytest.raises(ValueError, match="fails closed"):
        await dead_access.attempt(use, lambda r: r.get("agora:probe"), otherwise=None)


def state_of(breaker: CircuitBreaker) -> BreakerState:
    return breaker.state


async def test_guarded_uses_open_the_breaker_and_then_do_not_wait(
    own_redis: RedisProcess,
) -> None:
    client = create_redis(own_redis.url(), socket_timeout_s=TIMEOUT_S)
    breaker = CircuitBreaker("redis-policy-test", failure_threshold=3, open_s=60)
    access = RedisAccess(client, breaker, socket_timeout_s=TIMEOUT_S)
    own_redis.kill()
    try:
        for _ in range(5):  # unguarded: never counted
            await access.attempt(uses.PRESENCE_WRITE, lambda r: r.ping(), otherwise=None)
        assert state_of(breaker) is BreakerState.CLOSED
        for _ in range(3):
            await access.attempt(uses.CACHE, lambda r: r.ping(), otherwise=None)
        assert state_of(breaker) is BreakerState.OPEN
        started = time.monotonic()
        for _ in range(100):
            await access.attempt(uses.LOGIN_BACKOFF, lambda r: r.ping(), otherwise=None)
        assert time.monotonic() - started < 0.1  # refused by the breaker, no network
    finally:
        await client.aclose()


@pytest.fixture
def settings(settings: Settings, own_redis: RedisProcess) -> Settings:
    return settings.model_copy(update={"redis_url": own_redis.url()})


async def test_with_redis_killed_the_services_fail_open_or_closed_as_declared(
    system: System,  # noqa: F811
    own_redis: RedisProcess,
) -> None:
    alice = await system.account("alice")
    bob = await system.account("bob")
    own_redis.kill()
    auth_client, posts = system.auth.client, system.posts

    # Fail open / fall back: login (backoff skipped), reads (PostgreSQL), a write (its event
    # is not delivered live), the deleted-account check (PostgreSQL answers).
    login = await auth_client.post(
        "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    auth_client.cookies.clear()
    assert (await auth_client.get("/api/v1/auth/me", headers=alice.headers)).status_code == 200
    created = await posts.post("/api/v1/posts", json={"content": "still"}, headers=alice.headers)
    assert created.status_code == 201, created.text
    read = await posts.get(f"/api/v1/posts/{created.json()['id']}", headers=bob.headers)
    assert read.status_code == 200, read.text

    # Fail closed: whether alice is online (her own presence: always hers to see) cannot be
    # known; an account deletion that other services could not learn of is refused, and
    # nothing is deleted.
    presence = await system.realtime_http.get(
        f"/api/v1/realtime/presence/{alice.user_id}", headers=alice.headers
    )
    assert presence.status_code == 503
    assert presence.json()["error"]["code"] == "unavailable"
    assert presence.headers["retry-after"] == "5"
    deleted = await auth_client.request(
        "DELETE", "/api/v1/auth/me", json={"password": PASSWORD}, headers=bob.headers
    )
    assert deleted.status_code == 503
    assert deleted.json()["error"]["code"] == "unavailable"
    assert deleted.headers["retry-after"] == "5"
    assert await system.auth.count("users") == 2
