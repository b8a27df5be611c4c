"""A real realtime app on a real uvicorn server (in-process, free port), real Redis and
PostgreSQL, and the ``websockets`` client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
import psycopg
import pytest
import uvicorn
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect

from agora.config import Settings
from agora.events import Event, publish
from agora.redis.access import RedisAccess
from agora.resilience import CircuitBreaker
from agora.runtime import ServiceApp
from agora.services.realtime.app import create_app
from agora.services.realtime.service import EventDispatcher
from tests.conftest import TokenFactory, free_port


@dataclass
class RunningServer:
    app: ServiceApp[Any]
    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def dispatcher(self) -> EventDispatcher:
        dispatcher: EventDispatcher = self.app.runtime.parts.dispatcher
        return dispatcher


Serve = Callable[[ServiceApp[Any]], Awaitable[RunningServer]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start apps on uvicorn (wsproto, like production) and stop them after the test."""
    running: list[RunningServer] = []

    async def start(app: ServiceApp[Any]) -> RunningServer:
        port = free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            ws="wsproto",
            lifespan="on",
            log_config=None,
            ws_max_size=64 * 1024,
            ws_per_message_deflate=False,
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        async with asyncio.timeout(15):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        entry = RunningServer(app=app, server=server, task=task, port=port)
        running.append(entry)
        return entry

    yield start
    for entry in reversed(running):
        entry.server.should_exit = True
    await asyncio.gather(*(entry.task for entry in running))


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._dead: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Refuse new connections and cut the open ones (a Redis restart, as clients see it)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def blackhole(self) -> None:
        """Open connections stay open but carry nothing, ever again (a dead route, a frozen
        peer: no error, no data). New connections work."""
        self._dead.update(self._writers)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await source.read(65536):
                if sink in self._dead:
                    continue
                sink.write(data)
                await sink.drain()
        sink.close()


@pytest.fixture
async def proxy(settings: Settings) -> AsyncIterator[TcpProxy]:
    """A TCP proxy in front of the test Redis: ``stop()`` is a Redis outage."""
    target = urlsplit(settings.require_redis_url())
    running = TcpProxy(target.hostname or "127.0.0.1", target.port or 6379)
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def realtime(settings: Settings, tokens: TokenFactory, serve: Serve) -> RunningServer:
    return await serve(create_app(settings, key_resolver=tokens.resolver))


@pytest.fixture
async def redis_client(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.require_redis_url())
    yield client
    await client.aclose()


@pytest.fixture
def follow(database_url: str) -> Callable[[str, str], None]:
    def insert(follower_id: str, followee_id: str) -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO follows (follower_id, followee_id) VALUES (%s, %s)",
                (follower_id, followee_id),
            )

    return insert


@pytest.fixture
def emit(settings: Settings, redis_client: Redis) -> Callable[[Event], Awaitable[None]]:
    async def send(event: Event) -> None:
        access = RedisAccess(redis_client, CircuitBreaker("redis"), socket_timeout_s=1.0)
        assert await publish(access, settings.events_channel, event)

    return send


def open_socket(server: RunningServer, token: str, *, via: str = "header") -> Any:
    """``async with open_socket(...) as ws`` — the token in the header or the query string."""
    if via == "query":
        return connect(f"{server.ws_url}?access_token={token}", open_timeout=5)
    return connect(
        server.ws_url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=5
    )


async def receive(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(5):
        raw = await ws.recv()
    message: dict[str, Any] = orjson.loads(raw)
    return message


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait (bounded) until ``check()`` holds: for effects the server applies after a close."""
    async with asyncio.timeout(5):
        while True:
            if await check():
                return
            await asyncio.sleep(0.02)


async def assert_nothing_queued(ws: ClientConnection) -> None:
    """Prove a socket got nothing: its sender is FIFO, so had anything been queued for it,
    that would arrive before the pong to a ping sent now."""
    await ws.send('{"type": "ping"}')
    assert await receive(ws) == {"type": "pong"}
