"""Redis killed under load: auth and posts processes on a redis-server this test starts.

Requests keep succeeding from PostgreSQL (p95 < 250 ms), the redis breaker opens, and after
Redis is back everything recovers on its own within 45 s — with every acknowledged post in
the feed.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Cluster
from tests.e2e.test_realtime import bearer, register_and_login
from tests.redis_servers import RedisProcess, redis_server

pytestmark = pytest.mark.e2e


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text page (0 when absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        match = re.match(rf"{name}(?:{{(.*)}})? (\S+)$", line)
        if match and ",".join(sorted((match.group(1) or "").split(","))) == wanted:
            return float(match.group(2))
    return 0.0


class Load:
    """A few concurrent readers and a writer against posts; records every outcome."""

    def __init__(self, client: httpx.AsyncClient, headers: dict[str, str]) -> None:
        self.client = client
        self.headers = headers
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.created: list[str] = []

    async def run(self, seconds: float, workers: int = 4) -> None:
        self.latencies, self.errors = [], []
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(self._worker(i, deadline) for i in range(workers)))

    async def _worker(self, index: int, deadline: float) -> None:
        turn = 0
        while time.monotonic() < deadline:
            turn += 1
            started = time.perf_counter()
            if index == 0 and turn % 5 == 0:
                response = await self.client.post(
                    "/api/v1/posts", json={"content": f"p{turn}"}, headers=self.headers
                )
                if response.status_code == 201:
                    self.created.append(response.json()["id"])
            else:
                response = await self.client.get("/api/v1/posts/feed", headers=self.headers)
            self.latencies.append(time.perf_counter() - started)
            if response.status_code >= 400:
                self.errors.append(f"{response.status_code} {response.text[:200]}")
            await asyncio.sleep(0.01)

    def p95_ms(self) -> float:
        return statistics.quantiles(self.latencies, n=20)[-1] * 1000


async def test_redis_outage_is_survived_and_recovered_from(
    cluster: Cluster, tmp_path: Path
) -> None:
    redis = redis_server(tmp_path / "redis")
    try:
        env = {"AGORA_REDIS_URL": redis.url()}
        auth_service = cluster.start("auth", extra_env=env)
        posts = cluster.start("posts", extra_env=env)
        async with (
            httpx.AsyncClient(base_url=auth_service.url, timeout=10) as auth,
            httpx.AsyncClient(base_url=posts.url, timeout=10) as client,
        ):
            _, token = await register_and_login(auth, "outage")
            load = Load(client, bearer(token))
            await load.run(2.0)
            assert not load.errors

            redis.kill()
            await load.run(8.0)
            p95, errors, served = load.p95_ms(), len(load.errors), len(load.latencies)
            metrics = (await client.get("/metrics")).text
            assert metric(metrics, "agora_circuit_breaker_state", breaker="redis") == 1.0

            restarted = RedisProcess(redis.port, redis.workdir).start()
            redis = restarted
            back = time.monotonic()
            recovered_s = None
            while time.monotonic() - back < 50:
                before = (await client.get("/metrics")).text
                await load.run(0.5, workers=1)
                after = (await client.get("/metrics")).text
                closed = metric(after, "agora_circuit_breaker_state", breaker="redis") == 0.0
                hit = "agora_cache_requests_total"
                if closed and metric(after, hit, cache="feed", result="hit") > metric(
                    before, hit, cache="feed", result="hit"
                ):
                    recovered_s = time.monotonic() - back
                    break
            print(  # noqa: T201  # the measured figure is this test's report (pytest -s)
                f"\nredis outage: {served} requests in 8 s, p95 {p95:.1f} ms, "
                f"{errors} errors; recovered {recovered_s} s after redis returned"
            )
            assert errors == 0
            assert p95 < 250
            assert recovered_s is not None
            assert recovered_s < 45

            # Nothing lost: every acknowledged post is in the (cached again) feed.
            feed = await client.get("/api/v1/posts/feed?limit=100", headers=bearer(token))
            ids = {item["id"] for item in feed.json()["items"]}
            assert set(load.created[-100:]) <= ids
    finally:
        redis.kill()
