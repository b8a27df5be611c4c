"""The cache on a repeated-read workload, and what the invalidation scheme costs.

Prints, in one run (a real ``agora serve posts`` process under wrk; PostgreSQL and Redis):
1. home-feed reads with a new post every BENCH_WRITE_EVERY requests (invalidating the first
   page of every follower of its author):
   the feed cache's hit ratio and req/s, then req/s with the service's Redis unreachable
   (breaker open: every read goes to PostgreSQL);
2. an author with 100,000 followers posts: the stamp write the scheme makes, against the
   100,000 per-follower writes of a fan-out-on-write invalidation;
3. the cost of validating one cached first page against N followees' stamps.

Run: python -m benchmarks.cache_bench   (PostgreSQL and Redis as ``make bench`` finds them: the
machine's, in a scratch database ``agora_bench_cache`` and Redis db 14, flushed; or embedded).
Environment: BENCH_DURATION (seconds per phase, default 5), BENCH_CONCURRENCY (default 32),
BENCH_WRITE_EVERY (default 100; 0: reads only).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import asyncpg
import httpx
from pydantic import BaseModel
from redis.asyncio import Redis

from agora.cache import CacheService, Loaded, stamp
from agora.db.migrate import upgrade_to_head
from agora.devstack.embedded import free_port
from agora.redis.access import RedisAccess
from agora.redis.client import create_redis
from agora.resilience import CircuitBreaker
from agora.security.keys import SigningKey, generate_signing_key
from agora.security.tokens import TokenIssuer
from benchmarks.http_bench import dependencies, service_env

DB = "agora_bench_cache"
DURATION_S = float(os.environ.get("BENCH_DURATION", "5"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "32"))
WRITE_EVERY = int(os.environ.get("BENCH_WRITE_EVERY", "100"))  # one new post per N requests
USERS, FOLLOWS_EACH, POSTS = 1000, 200, 30000
READERS = 100


async def seed(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        ids = await conn.fetch(
            "INSERT INTO users (username, email, password_hash, display_name) "
            "SELECT 'user_' || i, 'user_' || i || '@example.com', 'x', 'U' || i "
            "FROM generate_series(1, $1) i RETURNING id::text",
            USERS,
        )
        users = [r["id"] for r in ids]
        rng = random.Random(7)  # noqa: S311 - reproducible demo data
        follows = {(a, b) for a in users for b in rng.sample(users, FOLLOWS_EACH) if a != b}
        await conn.copy_records_to_table(
            "follows",
            records=[(uuid.UUID(a), uuid.UUID(b)) for a, b in follows],
            columns=["follower_id", "followee_id"],
        )
        await conn.copy_records_to_table(
            "posts",
            records=[(uuid.UUID(rng.choice(users)), f"post {i}") for i in range(POSTS)],
            columns=["author_id", "content"],
        )
        await conn.execute("ANALYZE")
        return users
    finally:
        await conn.close()


def metric(text: str, name: str, labels: str) -> float:
    match = re.search(rf"^{name}{{{labels}}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@contextmanager
def jwks_server(key: SigningKey) -> Iterator[str]:
    """auth's JWKS, served for posts to trust the benchmark's own signing key."""
    document = json.dumps({"keys": [key.public_jwk()]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    server.shutdown()
    server.server_close()


WRK_SCRIPT = """
local tokens = {%s}
local n = math.random(1, #tokens)
request = function()
  n = n + 1
  local auth = "Bearer " .. tokens[(n %% #tokens) + 1]
  if %d > 0 and n %% %d == 0 then
    return wrk.format("POST", "/api/v1/posts",
      {["Authorization"] = auth, ["Content-Type"] = "application/json"}, '{"content": "x"}')
  end
  return wrk.format("GET", "/api/v1/posts/feed", {["Authorization"] = auth})
end
"""


def wrk(base_url: str, script: Path, seconds: float) -> float:
    command = ["wrk", "-t2", f"-c{CONCURRENCY}", f"-d{seconds:.0f}s", "-s", str(script), base_url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603
    if "Non-2xx" in out:
        raise RuntimeError(f"errors under load:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=1).status_code == HTTPStatus.OK
    except httpx.HTTPError:
        return False


@contextmanager
def posts_process(env: dict[str, str], workdir: Path) -> Iterator[str]:
    port = free_port()
    log = (workdir / f"posts-{port}.log").open("wb")
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "agora", "serve", "posts", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _ready(base):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"posts did not start; see {workdir}")
            time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def feed_benchmark(url: str, redis_url: str, users: list[str]) -> None:
    key = generate_signing_key()
    issuer = TokenIssuer(issuer="agora", audience="agora", ttl_s=900)
    tokens = [issuer.issue(u, key) for u in users[:READERS]]
    workdir = Path(tempfile.mkdtemp(prefix="agora-cache-bench-"))
    script = workdir / "feed.lua"
    quoted = ", ".join(f'"{t}"' for t in tokens)
    script.write_text(WRK_SCRIPT % (quoted, WRITE_EVERY, WRITE_EVERY))
    with jwks_server(key) as jwks_url:
        env = service_env(
            url,
            redis_url,
            jwks_url,
            AGORA_LOG_LEVEL="WARNING",
            AGORA_DB_POOL_MAX_SIZE="8",
            AGORA_BREAKER_OPEN_S="3600",
            AGORA_DB_POOL_MIN_SIZE="2",
        )
        with posts_process(env, workdir) as base:
            wrk(base, script, 2)  # warm-up: entries and stamps exist
            before = httpx.get(f"{base}/metrics").text
            cached = wrk(base, script, DURATION_S)
            after = httpx.get(f"{base}/metrics").text
        # The same service with its Redis unreachable: the breaker opens, every read queries.
        env["AGORA_REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
        with posts_process(env, workdir) as base:
            wrk(base, script, 2)
            uncached = wrk(base, script, DURATION_S)
    name = "agora_cache_requests_total"
    hits = metric(after, name, 'cache="feed",result="hit"') - metric(
        before, name, 'cache="feed",result="hit"'
    )
    misses = metric(after, name, 'cache="feed",result="miss"') - metric(
        before, name, 'cache="feed",result="miss"'
    )
    print(
        f"feed reads by {READERS} users (each follows {FOLLOWS_EACH} of {USERS}), "
        f"{f'1 new post per {WRITE_EVERY} requests' if WRITE_EVERY else 'reads only'}; "
        f"wrk -t2 -c{CONCURRENCY}, "
        f"{DURATION_S:.0f} s per phase, one posts process"
    )
    print(
        f"  cache hit ratio   {hits / max(1.0, hits + misses):6.1%}  "
        f"({hits:.0f} hits, {misses:.0f} misses)"
    )
    print(f"  cached            {cached:8.0f} req/s")
    print(f"  uncached          {uncached:8.0f} req/s   (Redis unreachable, breaker open)")


class Page(BaseModel):
    items: list[str]


async def invalidation_costs(redis: Redis) -> None:
    cache = CacheService(RedisAccess(redis, CircuitBreaker("bench")), early_refresh_beta=0.0)
    author = "celebrity"
    timings = []
    for _ in range(200):
        started = time.perf_counter()
        await cache.invalidate([stamp("author", author)])
        timings.append(time.perf_counter() - started)
    print("an author with 100,000 followers posts:")
    print(f"  stamp scheme: 1 key written, {statistics.median(timings) * 1e3:.3f} ms (median)")
    started = time.perf_counter()
    async with redis.pipeline(transaction=False) as pipe:
        for follower in range(100_000):
            pipe.incr(f"bench:feedgen:{follower}")
        await pipe.execute()
    fan_out = time.perf_counter() - started
    print(
        f"  fan-out on write: 100,000 keys written, {fan_out * 1e3:.0f} ms "
        "(plus reading the 100,000 followers from PostgreSQL)"
    )

    print("validating a cached first page (one round trip, in Redis):")
    for followees in (10, 100, 1000):
        deps = [stamp("author", f"a{i}") for i in range(followees)]

        async def load(_storing: bool, deps: list[str] = deps) -> Loaded[Page]:
            return Loaded(Page(items=["x"] * 20), deps)

        key = f"bench{followees}"
        for _ in range(3):  # create the stamps, then store the entry
            await cache.get_or_load("bench", key, Page, load, ttl_s=300)
        timings = []
        for _ in range(300):
            started = time.perf_counter()
            await cache.get_or_load("bench", key, Page, load, ttl_s=300)
            timings.append(time.perf_counter() - started)
        print(f"  {followees:5d} followees: {statistics.median(timings) * 1e3:.3f} ms (median)")


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="agora-cache-bench-"))
    with dependencies(workdir, scratch_db=DB) as (url, redis_url):
        upgrade_to_head(url)
        redis = create_redis(redis_url)
        try:
            await redis.flushdb()
            users = await seed(url)
            feed_benchmark(url, redis_url, users)
            await redis.flushdb()
            await invalidation_costs(redis)
        finally:
            await redis.flushdb()
            await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
