"""What the security controls cost per request, measured in-process (no HTTP server):

- the deleted-account check every authenticated request makes (one Redis EXISTS), and its
  PostgreSQL fallback;
- the security-headers and request-limits middleware around a trivial ASGI app;
- the JSON-depth scan of a worst-case 64 KiB body;
- the common-password lookup, and loading the list.

Run: ``python -m benchmarks.security_bench`` with AGORA_DATABASE_URL and AGORA_REDIS_URL set (a
migrated database). Prints medians of 3 runs; figures go to docs/security.md.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from starlette.types import Receive, Scope, Send

from agora.db import Database
from agora.ratelimit.rates import parse_rate
from agora.ratelimit.redis_store import RedisStore
from agora.redis.access import RedisAccess
from agora.resilience import CircuitBreaker
from agora.security.headers import SecurityHeadersMiddleware
from agora.security.limits import RequestLimitsMiddleware, json_too_deep
from agora.security.passwords import _common_passwords, is_common_password
from agora.security.revocation import DeletedUsers, RevokedSessions


async def _per_call_us(call: Callable[[], Awaitable[object]], n: int) -> tuple[float, float]:
    """Median over 3 runs of (wall µs per call, process CPU µs per call)."""
    walls, cpus = [], []
    for _ in range(3):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            await call()
        walls.append((time.perf_counter() - wall) / n * 1e6)
        cpus.append((time.process_time() - cpu) / n * 1e6)
    return statistics.median(walls), statistics.median(cpus)


async def _app(_scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def _asgi_call(
    app: Callable[[Scope, Receive, Send], Awaitable[None]],
) -> Callable[[], Awaitable[None]]:
    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/posts",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"20")],
    }

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b'{"content": "hello"}', "more_body": False}

    async def send(_message: dict[str, object]) -> None:
        return None

    async def call() -> None:
        await app(scope, receive, send)  # type: ignore[arg-type]

    return call


async def main() -> None:
    redis = Redis.from_url(os.environ.get("AGORA_REDIS_URL", "redis://127.0.0.1:6379/0"))
    db = Database(os.environ["AGORA_DATABASE_URL"], min_size=1, max_size=2)
    await db.connect()

    def store(client: Redis) -> DeletedUsers:
        return DeletedUsers(
            RedisAccess(client, CircuitBreaker("redis")),
            db,
            ttl_s=60,
            events_channel="agora:events:bench",
        )

    deleted = store(redis)
    user_id = str(uuid.uuid4())
    dead = store(Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5))

    rows = [
        (
            "deleted-account check, Redis EXISTS",
            await _per_call_us(lambda: deleted.is_deleted(user_id), 5000),
        ),
        (
            "deleted-account check, PostgreSQL fallback",
            await _per_call_us(lambda: dead.is_deleted(user_id), 300),
        ),
        ("trivial ASGI app", await _per_call_us(_asgi_call(_app), 20000)),
        (
            "+ security headers + request limits",
            await _per_call_us(
                _asgi_call(
                    SecurityHeadersMiddleware(
                        RequestLimitsMiddleware(
                            _app, max_body_bytes=65536, max_json_depth=32, timeout_s=30
                        ),
                        no_store=True,
                    )
                ),
                20000,
            ),
        ),
    ]
    worst = b'{"x": ' + b"[" * 32 + b"]" * 32 + b', "y": "' + b"[{" * 32000 + b'"}'
    rows.append(
        (
            "JSON depth scan, 64 KiB of brackets in a string",
            await _per_call_us(_sync(lambda: json_too_deep(worst, 32)), 200),
        )
    )
    # The limiter's round trip of an authenticated request: the limit and the deletion mark,
    # and with a session id the session's end mark as one more command in the same pipeline.
    limiter = RedisStore(RedisAccess(redis, CircuitBreaker("redis")))
    rate = parse_rate("1000000/minute")
    one = (DeletedUsers.mark_key(user_id),)
    two = (*one, RevokedSessions.mark_key(str(uuid.uuid4())))
    for name, keys in (("limit + deletion mark", one), ("limit + deletion + session marks", two)):
        rows.append(
            (
                f"limiter pipeline: {name}",
                await _per_call_us(
                    lambda keys=keys: limiter.hit_check_and_look(  # type: ignore[misc]
                        f"bench:{user_id}", rate, keys, None, strike_ttl_s=60
                    ),
                    5000,
                ),
            )
        )
    started = time.perf_counter()
    _common_passwords()
    rows.append(("common-password list load (once)", ((time.perf_counter() - started) * 1e6, 0.0)))
    rows.append(
        (
            "common-password lookup",
            await _per_call_us(_sync(lambda: is_common_password("Tr0ub4dor&3xyz")), 20000),
        )
    )
    for name, (wall, cpu) in rows:
        print(f"{name:55s} {wall:10.1f} µs wall {cpu:10.1f} µs CPU")
    await db.close()
    await redis.aclose()


def _sync(function: Callable[[], object]) -> Callable[[], Awaitable[object]]:
    async def call() -> object:
        return function()

    return call


if __name__ == "__main__":
    asyncio.run(main())
