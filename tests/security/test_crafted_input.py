"""Crafted input that PostgreSQL, UTF-8 or the datetime range cannot carry: a 4xx with the
error contract, never a 500."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from tests.security.conftest import System

# NUL: PostgreSQL text cannot hold it. A lone surrogate: JSON can carry it, UTF-8 cannot.
UNSTORABLE = ["ali\x00ce", "\x00", "ali\ud800ce"]


def _cursor(stamp: str) -> str:
    raw = f"v1|{stamp}|{uuid.uuid4()}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize("value", UNSTORABLE)
async def test_unstorable_characters_in_credentials_are_a_422(system: System, value: str) -> None:
    await system.account("alice")
    attempts = [
        ("/api/v1/auth/login", {"username": value, "password": "whatever-it-is"}),
        ("/api/v1/auth/login", {"username": "alice", "password": value + "-long-enough"}),
        ("/api/v1/auth/refresh", {"refresh_token": value}),
        ("/api/v1/auth/logout", {"refresh_token": value}),
        (
            "/api/v1/auth/register",
            {"username": "bob", "email": f"b{value}@example.com", "password": "x" * 12 + value},
        ),
    ]
    for path, body in attempts:
        # json.dumps escapes a lone surrogate as \ud800, as a hostile client would send it.
        response = await system.auth.client.post(
            path, content=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422, (path, body, response.text)
        assert response.json()["error"]["code"] == "validation_error"


# Valid ISO 8601 instants whose UTC conversion leaves datetime's range (year 1 to 9999).
OUT_OF_RANGE = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]


@pytest.mark.parametrize("stamp", OUT_OF_RANGE)
async def test_cursor_outside_the_utc_range_is_an_invalid_cursor(
    system: System, stamp: str
) -> None:
    alice = await system.account("alice")
    cursor = _cursor(stamp)
    for path in (
        "/api/v1/posts/feed",
        f"/api/v1/posts/users/{alice.user_id}",
        "/api/v1/posts/notifications",
    ):
        response = await system.posts.get(path, params={"cursor": cursor}, headers=alice.headers)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["error"]["code"] == "invalid_cursor"


async def test_nul_in_a_path_or_query_string_is_a_422(system: System) -> None:
    alice = await system.account("alice")
    attempts = [
        (system.auth.client, "/api/v1/auth/users/a%00b"),
        (system.posts, "/api/v1/posts/a%00b"),
        (system.posts, "/api/v1/posts/users/a%00b"),
        (system.posts, "/api/v1/posts/feed?cursor=a%00b"),
        (system.posts, "/api/v1/posts/notifications?cursor=%00"),
        (system.realtime_http, "/api/v1/realtime/presence/%00"),
    ]
    for client, path in attempts:
        response = await client.get(path, headers=alice.headers)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["error"]["code"] == "validation_error"
