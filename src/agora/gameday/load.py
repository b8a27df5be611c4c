"""The game day's steady background load: a closed loop of reads through the gateway (feed,
one post, a profile, presence) and a set of WebSockets, in its own thread and event loop.
Every request is recorded (time, status, latency); anything but a 2xx is an error."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus

import httpx
import websockets
from websockets.asyncio.client import connect

PASSWORD = "game day password 1"  # noqa: S105  # nosec B105 # the load's own throwaway users
# Access tokens live 15 minutes: log in again well before.
RELOGIN_S = 600.0
# A window with fewer answers than this says nothing about the SLIs being back.
MIN_SAMPLES = 5


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    status: int  # 0: no response (connection error, timeout)
    seconds: float
    route: str

    @property
    def ok(self) -> bool:
        return HTTPStatus.OK <= self.status < HTTPStatus.MULTIPLE_CHOICES


@dataclass
class Load:
    gateway: str
    workers: int = 8
    websockets: int = 24
    samples: list[Sample] = field(default_factory=list)
    ws_connected: int = 0
    ws_failures: int = 0
    _token: str = ""
    _ids: dict[str, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _ws_paused: threading.Event = field(default_factory=threading.Event)
    _ws_drop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _error: BaseException | None = None

    # -- control (any thread) ------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gameday-load", daemon=True)
        self._thread.start()
        if not self._ready.wait(120) or self._error is not None:
            raise RuntimeError(f"the load could not start: {self._error}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def drop_websockets(self) -> None:
        """Every socket cut at once, and the clients stay away until resume_websockets()."""
        self._ws_paused.set()
        self._ws_drop.set()

    def resume_websockets(self) -> None:
        self._ws_paused.clear()

    @property
    def token(self) -> str:
        return self._token

    # -- figures -------------------------------------------------------------------------
    def between(self, start: float, end: float) -> list[Sample]:
        return [s for s in list(self.samples) if start <= s.at < end]

    @staticmethod
    def errors(samples: list[Sample]) -> int:
        return sum(1 for s in samples if not s.ok)

    def healthy(self, window_s: float, max_p95_s: float = 0.5) -> bool:
        """The SLIs over the last ``window_s``: every request succeeded, p95 under bound."""
        now = time.time()
        recent = self.between(now - window_s, now)
        if len(recent) < MIN_SAMPLES or self.errors(recent):
            return False
        latencies = sorted(s.seconds for s in recent)
        return latencies[int(0.95 * (len(latencies) - 1))] < max_p95_s

    # -- the loop (its own thread) --------------------------------------------------------
    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start(), never lost
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        limits = httpx.Limits(max_connections=self.workers + 4)
        async with httpx.AsyncClient(base_url=self.gateway, timeout=10, limits=limits) as client:
            await self._setup(client)
            self._ready.set()
            tasks = [asyncio.create_task(self._worker(client)) for _ in range(self.workers)]
            tasks += [asyncio.create_task(self._socket()) for _ in range(self.websockets)]
            tasks.append(asyncio.create_task(self._relogin(client)))
            while not self._stop.is_set():  # noqa: ASYNC110 # a threading.Event, set from outside
                await asyncio.sleep(0.2)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _user(self, client: httpx.AsyncClient, name: str) -> tuple[str, str]:
        body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
        created = await client.post("/api/v1/auth/register", json=body)
        created.raise_for_status()
        login = await client.post(
            "/api/v1/auth/login", json={"username": name, "password": PASSWORD}
        )
        login.raise_for_status()
        return created.json()["id"], login.json()["access_token"]

    async def _setup(self, client: httpx.AsyncClient) -> None:
        tag = uuid.uuid4().hex[:8]
        author, author_token = await self._user(client, f"gdauthor{tag}")
        reader, self._token = await self._user(client, f"gdreader{tag}")
        self._ids.update(author=author, reader=reader, reader_name=f"gdreader{tag}")
        auth = {"Authorization": f"Bearer {self._token}"}
        (await client.put(f"/api/v1/posts/follows/{author}", headers=auth)).raise_for_status()
        author_auth = {"Authorization": f"Bearer {author_token}"}
        # Presence is visible to the accounts a user follows (docs/security.md): the author
        # follows the reader back, so the reader may see whether the author is online.
        follow_back = await client.put(f"/api/v1/posts/follows/{reader}", headers=author_auth)
        follow_back.raise_for_status()
        post = await client.post("/api/v1/posts", json={"content": "game day"}, headers=author_auth)
        post.raise_for_status()
        self._ids["post"] = post.json()["id"]

    def _requests(self) -> list[tuple[str, str]]:
        ids = self._ids
        return [
            ("posts", "/api/v1/posts/feed?limit=10"),
            ("posts", f"/api/v1/posts/{ids['post']}"),
            ("posts", f"/api/v1/posts/users/{ids['author']}?limit=10"),
            ("auth", f"/api/v1/auth/users/{ids['author']}"),
            ("realtime", f"/api/v1/realtime/presence/{ids['author']}"),
        ]

    async def _worker(self, client: httpx.AsyncClient) -> None:
        requests = self._requests()
        while True:
            route, path = random.choice(requests)  # noqa: S311  # nosec B311 # load mix
            started = time.time()
            status = 0
            with contextlib.suppress(httpx.HTTPError):
                response = await client.get(
                    path, headers={"Authorization": f"Bearer {self._token}"}
                )
                status = response.status_code
            self.samples.append(Sample(started, status, time.time() - started, route))
            if status == 0:
                await asyncio.sleep(0.05)  # a refused connection returns at once

    async def _relogin(self, client: httpx.AsyncClient) -> None:
        body = {"username": self._ids["reader_name"], "password": PASSWORD}
        while True:
            await asyncio.sleep(RELOGIN_S)
            with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
                response = await client.post("/api/v1/auth/login", json=body)
                if response.status_code == HTTPStatus.OK:
                    self._token = response.json()["access_token"]

    async def _socket(self) -> None:
        url = self.gateway.replace("http://", "ws://") + "/ws"
        while True:
            while self._ws_paused.is_set():  # noqa: ASYNC110 # a threading.Event
                await asyncio.sleep(0.2)
            try:
                async with connect(
                    f"{url}?access_token={self._token}", open_timeout=10, close_timeout=1
                ) as socket:
                    self.ws_connected += 1
                    try:
                        while not self._ws_paused.is_set():
                            await socket.send('{"type": "ping"}')
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(socket.recv(), 5)
                            await asyncio.sleep(1)
                        # Cut, not closed: the transport goes away as on a lost network.
                        socket.transport.abort()
                    finally:
                        self.ws_connected -= 1
            except (OSError, websockets.WebSocketException, TimeoutError):
                self.ws_failures += 1
                await asyncio.sleep(1)
