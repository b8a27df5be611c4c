"""What the rate limiter costs per request: the same authenticated GET /api/v1/posts/{id} on
two posts processes, one with rate limiting off (``AGORA_RATELIMIT_ENABLED=false``: no
middleware at all) and one with it on (per-user GCRA on Redis: token check, one EVALSHA,
five response headers) under a limit too high to be reached. wrk at 64 connections
(throughput) and at 1 connection (latency without queueing). The two alternate, ABBA, for
BENCH_ROUNDS rounds (default 3), and the medians are compared, so load that comes and goes on a
shared machine weighs on both alike. Then the middleware alone, in process, around an empty
ASGI app: CPU time per request (the figure that least depends on what else the machine does).

    python -m benchmarks.ratelimit_bench    (needs wrk)

Environment: BENCH_DURATION (s per run), BENCH_CONNECTIONS, BENCH_ROUNDS.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from agora.config import Settings
from agora.db import Database
from agora.db.migrate import upgrade_to_head
from agora.devstack.embedded import free_port
from agora.ratelimit.middleware import RateLimitMiddleware, build_rate_limiter
from agora.redis.access import RedisAccess
from agora.redis.client import create_redis
from agora.resilience import CircuitBreaker
from agora.security.identity import IdentityMiddleware, identity_of
from agora.security.keys import generate_signing_key
from agora.security.revocation import DeletedUsers
from agora.security.tokens import StaticKeyResolver, TokenIssuer, TokenVerifier
from benchmarks.http_bench import (
    BENCH_LIMITS,
    CONNECTIONS,
    DURATION_S,
    WrkResult,
    auth_jwks_url,
    dependencies,
    process,
    service_env,
    wrk,
)

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def main() -> int:
    if shutil.which("wrk") is None:
        print("the rate-limit bench needs wrk (apt-get install wrk)", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="agora-rl-bench-"))
    with dependencies(workdir, scratch_db="agora_rl_bench") as (database_url, redis_url):
        upgrade_to_head(database_url)
        auth_port, off_port, on_port = free_port(), free_port(), free_port()
        env = service_env(database_url, redis_url, auth_jwks_url(auth_port))
        serve = [sys.executable, "-m", "agora", "serve"]
        urls = {port: f"http://127.0.0.1:{port}" for port in (auth_port, off_port, on_port)}
        with (
            process(
                [*serve, "auth", "--port", str(auth_port)],
                env,
                workdir / "auth.log",
                f"{urls[auth_port]}/readyz",
            ),
            process(
                [*serve, "posts", "--port", str(off_port)],
                {**env, "AGORA_RATELIMIT_ENABLED": "false"},
                workdir / "posts-off.log",
                f"{urls[off_port]}/readyz",
            ),
            process(
                [*serve, "posts", "--port", str(on_port)],
                env,
                workdir / "posts-on.log",
                f"{urls[on_port]}/readyz",
            ),
        ):
            token = _login(urls[auth_port])
            post = httpx.post(
                f"{urls[on_port]}/api/v1/posts",
                headers={"Authorization": f"Bearer {token}"},
                json={"content": "What does a rate limit cost?"},
            )
            path = f"/api/v1/posts/{post.raise_for_status().json()['id']}"
            off_url, on_url = urls[off_port] + path, urls[on_port] + path
            limited = httpx.get(on_url, headers={"Authorization": f"Bearer {token}"})
            assert "x-ratelimit-limit" in limited.headers, "the limiter is not on"
            for url in (off_url, on_url):
                wrk(url, token)  # warm-up: JWKS fetched, pools filled, script loaded
            results = {
                connections: _alternate(off_url, on_url, token, connections)
                for connections in (CONNECTIONS, 1)
            }
            health = _limiter_health(urls[on_port])
        in_process = asyncio.run(_middleware_cost(redis_url))
    _report(results)
    print(health)
    print(in_process)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


Runs = tuple[list[WrkResult], list[WrkResult]]


def _alternate(off_url: str, on_url: str, token: str, connections: int) -> Runs:
    off: list[WrkResult] = []
    on: list[WrkResult] = []
    for round_ in range(ROUNDS):
        order = [(off_url, off), (on_url, on)]
        for url, runs in order if round_ % 2 == 0 else reversed(order):
            runs.append(wrk(url, token, connections=connections))
    return off, on


def _login(auth_url: str) -> str:
    credentials = {"username": "rl_bench_user", "password": "correct-horse-battery"}
    httpx.post(
        f"{auth_url}/api/v1/auth/register",
        json={**credentials, "email": "rl-bench@example.com"},
    )  # 409 on a re-run against the same database is fine
    login = httpx.post(f"{auth_url}/api/v1/auth/login", json=credentials)
    token: str = login.raise_for_status().json()["access_token"]
    return token


async def _middleware_cost(redis_url: str, n: int = 5000) -> str:
    settings = Settings(redis_url=redis_url, ratelimit_user=BENCH_LIMITS["AGORA_RATELIMIT_USER"])
    key = generate_signing_key()
    issuer = TokenIssuer(issuer=settings.jwt_issuer, audience=settings.jwt_audience, ttl_s=900)
    token = issuer.issue(str(uuid.uuid4()), key)
    redis = create_redis(redis_url)
    verifier = TokenVerifier(
        StaticKeyResolver({key.kid: key.public_key}),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    access = RedisAccess(redis, CircuitBreaker("redis"), ratelimit_timeout_s=0.1)
    limiter = build_rate_limiter(settings, access)
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/api/v1/posts/some-id",
        "headers": [(b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 50000),
    }

    async def endpoint(_scope: Any, _receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def discard(_: Any) -> None:
        pass

    async def per_request(app: Any) -> tuple[float, float]:
        for _ in range(200):  # warm-up: token verified once, script loaded
            await app(dict(scope), receive, discard)
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(n):
            await app(dict(scope), receive, discard)
        return (time.process_time() - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6

    # The deleted-account mark (issue 8): asked by authentication in a round trip of its own,
    # or read in the limiter's pipeline and kept by the request.
    deleted_users = DeletedUsers(
        access,
        Database("postgresql://127.0.0.1/unused"),  # only asked when Redis fails: never here
        ttl_s=60,
        events_channel="agora:events:bench",
    )

    async def authenticated(scope_: Any, receive_: Any, send_: Any) -> None:
        identity = identity_of(scope_)
        assert identity.user_id is not None
        assert not await deleted_users.is_deleted(identity.user_id, prefetched=identity.deleted)
        await endpoint(scope_, receive_, send_)

    def stack(app: Any, deleted: DeletedUsers | None) -> IdentityMiddleware:
        limited = RateLimitMiddleware(
            app, settings=settings, limiter=limiter, deleted_users=deleted
        )
        return IdentityMiddleware(limited, verifier=verifier, exempt_paths=frozenset())

    try:
        bare = await per_request(
            IdentityMiddleware(endpoint, verifier=verifier, exempt_paths=frozenset())
        )
        limited = await per_request(stack(endpoint, None))
        separate = await per_request(stack(authenticated, None))
        pipelined = await per_request(stack(authenticated, deleted_users))
    finally:
        await redis.aclose()
    return (
        f"in process, {n} sequential requests: middleware + one EVALSHA adds "
        f"{limited[0] - bare[0]:.0f} us CPU and {limited[1] - bare[1]:.0f} us wall per request\n"
        f"with the deleted-account check: its own round trip {separate[0]:.0f} us CPU / "
        f"{separate[1]:.0f} us wall per request, in the limiter's pipeline "
        f"{pipelined[0]:.0f} us CPU / {pipelined[1]:.0f} us wall"
    )


def _limiter_health(posts_url: str) -> str:
    """From the limited process's own metrics: did it stay on Redis, and refuse nothing?"""
    samples = httpx.get(f"{posts_url}/metrics").text.splitlines()

    def total(prefix: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in samples if line.startswith(prefix))

    fallbacks = total('agora_errors_total{type="ratelimit_fallback"}')
    refused = total("agora_ratelimit_rejections_total{")
    return f"limiter on: {fallbacks:.0f} fallback(s) to in-process limits, {refused:.0f} refusals"


def _report(results: dict[int, Runs]) -> None:
    print(
        f"\nGET /api/v1/posts/{{id}} with a bearer token; wrk {DURATION_S}s per run, "
        f"{ROUNDS} rounds alternating off/on\n"
    )
    print(f"{'target':<28}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}   runs (req/s)")
    summary = []
    for connections, (off, on) in results.items():
        medians = []
        for name, runs in (("off", off), ("on", on)):
            rps = statistics.median(r.requests_per_s for r in runs)
            p50 = statistics.median(r.p50_ms for r in runs)
            p99 = statistics.median(r.p99_ms for r in runs)
            errors = sum(r.non_2xx for r in runs)
            each = " ".join(f"{r.requests_per_s:.0f}" for r in runs)
            label = f"limiter {name}, -c{connections}"
            print(f"{label:<28}{rps:>8.0f}{p50:>9.2f}{p99:>9.2f}{errors:>9}   {each}")
            medians.append((rps, p50))
        (off_rps, off_p50), (on_rps, on_p50) = medians
        summary.append(
            f"limiter cost at -c{connections} (medians): p50 {on_p50 - off_p50:+.2f} ms, "
            f"{on_rps - off_rps:+.0f} req/s ({(on_rps / off_rps - 1) * 100:+.1f}%)"
        )
    print("\n" + "\n".join(summary))


if __name__ == "__main__":
    sys.exit(main())
