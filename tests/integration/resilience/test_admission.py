"""Admission control on a real posts app: past ``max_in_flight`` a request waits in a bounded
queue for a bounded time, then is refused with the contract's 503 before any work; probes and
metrics still answer, and capacity comes back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from agora.config import Settings
from agora.observability.metrics import ADMISSION_REJECTIONS
from agora.services.posts import repository
from agora.services.posts.app import create_app
from tests.conftest import TokenFactory

AppClient = Callable[[FastAPI], Awaitable[httpx.AsyncClient]]


@dataclass
class HeldPosts:
    """A posts app whose post loads wait until released: requests held inside the app."""

    client: httpx.AsyncClient
    path: str
    viewer: Callable[[], dict[str, str]]
    release: asyncio.Event
    loads: list[asyncio.Event]

    async def hold(self, count: int) -> list[asyncio.Task[httpx.Response]]:
        """``count`` requests of different viewers (a post's entry is per viewer), each inside."""
        tasks = []
        for index in range(count):
            tasks.append(asyncio.create_task(self.client.get(self.path, headers=self.viewer())))
            async with asyncio.timeout(10):
                await self.loads[index].wait()
        return tasks


@pytest.fixture
def held_posts(
    settings: Settings,
    tokens: TokenFactory,
    app_client: AppClient,
    make_user: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Awaitable[HeldPosts]]:
    release = asyncio.Event()
    loads = [asyncio.Event() for _ in range(10)]
    started = 0
    get_post = repository.get_post

    async def held(*args: Any, **kwargs: Any) -> Any:
        nonlocal started
        loads[started].set()
        started += 1
        await release.wait()
        return await get_post(*args, **kwargs)

    async def build(**admission: Any) -> HeldPosts:
        app = create_app(settings.model_copy(update=admission), key_resolver=tokens.resolver)
        client = await app_client(app)
        author = {"Authorization": f"Bearer {tokens(make_user())}"}
        created = await client.post("/api/v1/posts", json={"content": "hi"}, headers=author)
        assert created.status_code == 201, created.text
        monkeypatch.setattr(repository, "get_post", held)
        return HeldPosts(
            client=client,
            path=f"/api/v1/posts/{created.json()['id']}",
            viewer=lambda: {"Authorization": f"Bearer {tokens(make_user())}"},
            release=release,
            loads=loads,
        )

    return build


def assert_overloaded(response: httpx.Response) -> None:
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["code"] == "overloaded"
    assert response.json()["error"]["request_id"] == response.headers["x-request-id"]
    assert (
        response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    )
    assert response.headers["cache-control"] == "no-store"


async def test_without_a_queue_the_request_past_the_bound_is_refused_at_once(
    held_posts: Callable[..., Awaitable[HeldPosts]],
) -> None:
    posts = await held_posts(max_in_flight=2, admission_queue=0)
    inside = await posts.hold(2)
    rejected_before = ADMISSION_REJECTIONS._value.get()
    try:
        async with asyncio.timeout(5):  # without the bound it would wait on the held load
            refused = await posts.client.get(posts.path, headers=posts.viewer())
        for probe in ("/healthz/live", "/metrics"):
            assert (await posts.client.get(probe)).status_code == 200
    finally:
        posts.release.set()
    assert_overloaded(refused)
    assert ADMISSION_REJECTIONS._value.get() == rejected_before + 1
    assert not posts.loads[2].is_set()  # refused before the route: nothing loaded for it
    assert [(await task).status_code for task in inside] == [200, 200]
    assert (await posts.client.get(posts.path, headers=posts.viewer())).status_code == 200


async def test_a_request_waits_its_turn_and_the_one_past_the_queue_is_refused(
    held_posts: Callable[..., Awaitable[HeldPosts]],
) -> None:
    posts = await held_posts(max_in_flight=1, admission_queue=1, admission_queue_timeout_s=10)
    inside = await posts.hold(1)
    waiting = asyncio.create_task(posts.client.get(posts.path, headers=posts.viewer()))
    await asyncio.sleep(0.2)
    try:
        async with asyncio.timeout(5):
            refused = await posts.client.get(posts.path, headers=posts.viewer())
        assert not waiting.done()
        assert not posts.loads[1].is_set()  # the waiter is not inside yet
    finally:
        posts.release.set()
    assert_overloaded(refused)
    # the finishing request hands its slot over: the waiter is served
    assert (await inside[0]).status_code == 200
    assert (await waiting).status_code == 200


async def test_a_request_that_waited_too_long_is_refused(
    held_posts: Callable[..., Awaitable[HeldPosts]],
) -> None:
    posts = await held_posts(max_in_flight=1, admission_queue=5, admission_queue_timeout_s=0.2)
    inside = await posts.hold(1)
    try:
        started = time.monotonic()
        async with asyncio.timeout(5):
            refused = await posts.client.get(posts.path, headers=posts.viewer())
        waited = time.monotonic() - started
    finally:
        posts.release.set()
    assert_overloaded(refused)
    assert 0.15 < waited < 2
    assert (await inside[0]).status_code == 200
    # the slot was not lost to the waiter that gave up
    assert (await posts.client.get(posts.path, headers=posts.viewer())).status_code == 200
