"""The request-limits middleware on its own: JSON depth scanning and the request deadline."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from agora.security.limits import RequestLimitsMiddleware, json_too_deep


@pytest.mark.parametrize(
    ("body", "limit", "too_deep"),
    [
        (b"[[[]]]", 3, False),
        (b"[[[[]]]]", 3, True),
        (b'{"a": {"b": {"c": 1}}}', 3, False),
        (b'{"a": {"b": {"c": {}}}}', 3, True),
        (b'["[[[[[[", "{{{{{{"]', 2, False),  # brackets in strings are text
        (b'["\\"[[[[[[[", 1]', 2, False),  # an escaped quote does not end the string
        (json.dumps([[1, [2, [3]]], [4]]).encode(), 4, False),
        (b"[" * 10_000, 32, True),
    ],
)
def test_json_depth(body: bytes, limit: int, too_deep: bool) -> None:
    assert json_too_deep(body, limit) is too_deep


def _client(app: object, timeout_s: float) -> httpx.AsyncClient:
    guarded = RequestLimitsMiddleware(
        app,  # type: ignore[arg-type]
        max_body_bytes=1024,
        max_json_depth=8,
        timeout_s=timeout_s,
        body_timeout_s=10.0,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=guarded), base_url="http://t")


async def test_a_request_past_its_deadline_is_answered_504() -> None:
    async def slow(_scope: Scope, _receive: Receive, _send: Send) -> None:
        await asyncio.sleep(10)

    async with _client(slow, timeout_s=0.05) as client:
        response = await client.get("/")
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "timeout"


async def test_a_timeout_of_the_apps_own_is_not_turned_into_504() -> None:
    async def dependency_timeout(_scope: Scope, _receive: Receive, _send: Send) -> None:
        raise TimeoutError("redis read timed out")

    async with _client(dependency_timeout, timeout_s=5) as client:
        with pytest.raises(TimeoutError, match="redis"):
            await client.get("/")


async def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    reached = False

    async def app(_scope: Scope, _receive: Receive, _send: Send) -> None:
        nonlocal reached
        reached = True

    async with _client(app, timeout_s=5) as client:
        response = await client.post("/", content=b"x" * 2048)
    assert response.status_code == 413
    assert not reached


async def _ok(_scope: Scope, _receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"reached"})


# Every spelling FastAPI parses as JSON (media types are case-insensitive, RFC 9110 8.3.1).
@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/JSON",
        "Application/Json; charset=utf-8",
        "APPLICATION/JSON ;charset=UTF-8",
        "application/merge-patch+json",
        "application/VND.API+JSON",
    ],
)
async def test_json_depth_is_checked_whatever_the_media_types_case(content_type: str) -> None:
    async with _client(_ok, timeout_s=5) as client:
        deep = await client.post("/", content=b"[" * 9, headers={"Content-Type": content_type})
        shallow = await client.post("/", content=b"[[]]", headers={"Content-Type": content_type})
    assert deep.status_code == 422
    assert deep.json()["error"]["code"] == "json_too_deep"
    assert shallow.text == "reached"


@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream"])
async def test_other_media_types_are_not_scanned(content_type: str) -> None:
    async with _client(_ok, timeout_s=5) as client:
        response = await client.post("/", content=b"[" * 9, headers={"Content-Type": content_type})
    assert response.text == "reached"
