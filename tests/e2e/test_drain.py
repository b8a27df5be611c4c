"""SIGTERM on real `agora serve` processes: nothing in flight is lost, readiness turns 503 at
once, WebSocket clients are told to reconnect (server.draining, then 1012) and do so to
another instance, and the process exits 0 well within 60 s."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator

import httpx
import orjson
import psycopg
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import Cluster, ServiceProcess
from tests.e2e.test_realtime import bearer, receive, register_and_login

pytestmark = pytest.mark.e2e

IN_FLIGHT = 200
JITTER_MS = 3000
DRAIN_ENV = {
    "AGORA_SHUTDOWN_DELAY_S": "1.5",
    "AGORA_HEALTH_CHECK_INTERVAL_S": "1",
    "AGORA_WS_RECONNECT_JITTER_MS": str(JITTER_MS),
}


async def readiness(proc: ServiceProcess) -> int | None:
    """The readiness status, or None once the instance no longer accepts connections."""
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(f"{proc.url}/readyz")).status_code
    except httpx.TransportError:
        return None


async def wait_for_lock_waiters(database_url: str, count: int) -> None:
    async with asyncio.timeout(20):
        while True:
            async with await psycopg.AsyncConnection.connect(database_url) as conn:
                cursor = await conn.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE application_name = 'agora-posts' AND wait_event_type = 'Lock'"
                )
                row = await cursor.fetchone()
            if row is not None and row[0] >= count:
                return
            await asyncio.sleep(0.1)


@pytest.fixture
def table_lock(database_url: str) -> Iterator[psycopg.Connection]:
    """Holds every notifications query in PostgreSQL until the test lets go."""
    conn = psycopg.connect(database_url)
    conn.execute("LOCK TABLE notifications IN ACCESS EXCLUSIVE MODE")
    yield conn
    conn.rollback()
    conn.close()


async def test_sigterm_under_200_in_flight_requests_loses_none(
    cluster: Cluster, database_url: str, table_lock: psycopg.Connection
) -> None:
    auth = cluster.start("auth")
    pool = 5
    posts = cluster.start(
        "posts",
        extra_env={
            **DRAIN_ENV,
            "AGORA_DB_POOL_MAX_SIZE": str(pool),
            # The held requests queue for a pooled connection; they must wait, not fail.
            "AGORA_DB_ACQUIRE_TIMEOUT_S": "45",
            "AGORA_DB_COMMAND_TIMEOUT_S": "45",
        },
    )
    async with httpx.AsyncClient(base_url=auth.url, timeout=10) as client:
        _, token = await register_and_login(client, "drainer")

    limits = httpx.Limits(max_connections=IN_FLIGHT + 10, max_keepalive_connections=IN_FLIGHT)
    async with httpx.AsyncClient(base_url=posts.url, timeout=60, limits=limits) as client:
        requests = [
            asyncio.create_task(client.get("/api/v1/posts/notifications", headers=bearer(token)))
            for _ in range(IN_FLIGHT)
        ]
        # Every pooled connection waits on the lock; the rest wait for one of them.
        await wait_for_lock_waiters(database_url, pool)
        await asyncio.sleep(1.0)
        assert not any(task.done() for task in requests)

        signalled = time.monotonic()
        posts.process.send_signal(signal.SIGTERM)
        statuses = [await readiness(posts)]
        assert statuses[0] == 503  # at once, while it still serves
        async with asyncio.timeout(20):
            while statuses[-1] is not None:  # the pre-drain delay, then it stops listening
                await asyncio.sleep(0.1)
                statuses.append(await readiness(posts))
        assert set(statuses) == {503, None}, statuses
        assert posts.process.poll() is None  # still draining what it holds

        table_lock.rollback()
        responses = await asyncio.gather(*requests, return_exceptions=True)

    failed = [r for r in responses if not isinstance(r, httpx.Response) or r.status_code != 200]
    code = await asyncio.to_thread(posts.process.wait, 60)
    drain_s = time.monotonic() - signalled
    print(f"\ndrain: {IN_FLIGHT} in flight, {len(failed)} failed, exit {code}, {drain_s:.2f}s")  # noqa: T201  # the measured figure is this test's report (pytest -s)
    assert failed == []
    assert code == 0, posts.logs()
    assert drain_s < 60
    assert '"drained"' in posts.logs()


async def test_a_drain_that_outlives_its_timeout_cuts_off_and_exits_1(
    cluster: Cluster,
    table_lock: psycopg.Connection,  # noqa: ARG001  # taken after the cluster started: holds the lock
) -> None:
    auth = cluster.start("auth")
    posts = cluster.start(
        "posts",
        extra_env={"AGORA_SHUTDOWN_TIMEOUT_S": "1", "AGORA_DB_ACQUIRE_TIMEOUT_S": "30"},
    )
    async with httpx.AsyncClient(base_url=auth.url, timeout=10) as client:
        _, token = await register_and_login(client, "stuck")
    async with httpx.AsyncClient(base_url=posts.url, timeout=30) as client:
        held = asyncio.create_task(client.get("/api/v1/posts/notifications", headers=bearer(token)))
        await asyncio.sleep(1.0)
        posts.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(posts.process.wait, 30)
        cut_off = await held
    assert code == 1
    assert cut_off.status_code == 503  # the contract's error, so the client may retry
    assert cut_off.headers["retry-after"] == "1"
    assert cut_off.json()["error"]["code"] == "unavailable"
    assert cut_off.json()["error"]["request_id"] == cut_off.headers["x-request-id"]
    assert "drain timeout" in posts.logs()


async def test_sigterm_tells_websocket_clients_to_reconnect_elsewhere(cluster: Cluster) -> None:
    auth = cluster.start("auth")
    posts = cluster.start("posts")
    leaving = cluster.start("realtime", extra_env=DRAIN_ENV)
    staying = cluster.start("realtime")
    async with httpx.AsyncClient(base_url=auth.url, timeout=10) as client:
        author_id, author_token = await register_and_login(client, "author")
        readers = [await register_and_login(client, f"reader{i}") for i in range(10)]
    async with httpx.AsyncClient(base_url=posts.url, timeout=10) as client:
        for _, token in readers:
            followed = await client.put(f"/api/v1/posts/follows/{author_id}", headers=bearer(token))
            assert followed.status_code == 200

    sockets: list[ClientConnection] = [
        await connect(f"{leaving.ws_url}/ws", additional_headers=bearer(token))
        for _, token in readers
    ]
    try:
        for ws in sockets:
            await ws.send('{"type": "ping"}')
            assert orjson.loads(await ws.recv()) == {"type": "pong"}
        leaving.process.send_signal(signal.SIGTERM)
        assert await readiness(leaving) == 503

        delays = []
        for ws in sockets:
            goodbye = await receive(ws, of_type="server.draining")
            assert set(goodbye) == {"type", "reconnect_after_ms"}
            delays.append(goodbye["reconnect_after_ms"])
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(10):
                    await ws.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1012
        assert all(0 <= delay <= JITTER_MS for delay in delays)
        assert len(set(delays)) > 1  # jittered, so reconnections spread out
    finally:
        for ws in sockets:
            await ws.close()
    assert await asyncio.to_thread(leaving.process.wait, 60) == 0, leaving.logs()

    # They reconnect to the other instance and miss nothing that happens afterwards.
    moved = [
        await connect(f"{staying.ws_url}/ws", additional_headers=bearer(token))
        for _, token in readers
    ]
    try:
        for ws in moved:
            await ws.send('{"type": "ping"}')
            assert orjson.loads(await ws.recv()) == {"type": "pong"}
        async with httpx.AsyncClient(base_url=posts.url, timeout=10) as client:
            created = await client.post(
                "/api/v1/posts", json={"content": "after the move"}, headers=bearer(author_token)
            )
        assert created.status_code == 201
        for ws in moved:
            pushed = await receive(ws, of_type="post.created")
            assert pushed["post"]["id"] == created.json()["id"]
    finally:
        for ws in moved:
            await ws.close()
    assert "Traceback" not in leaving.logs()
