"""SQL metacharacters and markup through every text input: stored verbatim or as plain text,
never executed, never a 500; every answer is JSON."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from tests.integration.auth.conftest import PASSWORD
from tests.security.conftest import System

SQL = [
    "'; DROP TABLE users; --",
    "' OR '1'='1",
    '" OR ""="',
    "1; SELECT pg_sleep(5)",
    "$1 $$ ; \\x00 %s %(x)s",
    "Robert'); DELETE FROM posts WHERE ('1'='1",
]
MARKUP = {
    "<script>alert(1)</script>hi": "hi",
    '<img src=x onerror="alert(1)">pic': "pic",
    "<b>bold</b> &amp; <i>it</i>": "bold & it",
    "&lt;script&gt;alert(1)&lt;/script&gt;ok": "ok",
    '<a href="javascript:alert(1)">link</a>': "link",
    "<svg><script>alert(1)</script></svg>x": "x",
    "1 < 2 and 3 > 2": "1 < 2 and 3 > 2",
}
TABLES = ("users", "posts", "refresh_tokens", "signing_keys")


async def _row_counts(system: System) -> dict[str, int]:
    return {table: await system.auth.count(table) for table in TABLES}


async def test_sql_metacharacters_are_data_in_every_text_field(system: System) -> None:
    alice = await system.account("alice")
    post = await system.posts.post("/api/v1/posts", json={"content": "seed"}, headers=alice.headers)
    assert post.status_code == 201
    before = await _row_counts(system)

    for payload in SQL:
        profile = await system.auth.client.patch(
            "/api/v1/auth/me",
            json={"display_name": payload[:50], "bio": payload},
            headers=alice.headers,
        )
        assert profile.status_code == 200, (payload, profile.text)
        assert profile.json()["bio"] == payload.strip()
        created = await system.posts.post(
            "/api/v1/posts", json={"content": payload}, headers=alice.headers
        )
        assert created.status_code == 201, (payload, created.text)
        stored = await system.posts.get(
            f"/api/v1/posts/{created.json()['id']}", headers=alice.headers
        )
        assert stored.json()["content"] == payload.strip()
        login = await system.auth.client.post(
            "/api/v1/auth/login", json={"username": payload, "password": payload}
        )
        assert login.status_code == 401, payload
        register = await system.auth.client.post(
            "/api/v1/auth/register",
            json={"username": payload, "email": f"{payload}@example.com", "password": PASSWORD},
        )
        assert register.status_code == 422, payload
        quoted = quote(payload, safe="")
        paths = [
            (system.auth.client, f"/api/v1/auth/users/{quoted}"),
            (system.posts, f"/api/v1/posts/{quoted}"),
            (system.posts, f"/api/v1/posts/users/{quoted}"),
            (system.posts, f"/api/v1/posts/feed?cursor={quoted}"),
            (system.posts, f"/api/v1/posts/notifications?cursor={quoted}"),
            (system.realtime_http, f"/api/v1/realtime/presence/{quoted}"),
        ]
        for client, path in paths:
            response = await client.get(path, headers=alice.headers)
            assert response.status_code in (400, 404, 422), (path, response.status_code)
            assert response.headers["content-type"] == "application/json"
        for method in ("PUT", "DELETE"):
            follow = await system.posts.request(
                method, f"/api/v1/posts/follows/{quoted}", headers=alice.headers
            )
            like = await system.posts.request(
                method, f"/api/v1/posts/{quoted}/like", headers=alice.headers
            )
            assert follow.status_code in (404, 422), (method, follow.text)
            assert like.status_code in (404, 422), (method, like.text)
        deleted = await system.posts.delete(f"/api/v1/posts/{quoted}", headers=alice.headers)
        assert deleted.status_code in (404, 422)

    after = await _row_counts(system)
    assert after["users"] == before["users"]
    assert after["posts"] == before["posts"] + len(SQL)
    assert after["signing_keys"] == before["signing_keys"]


@pytest.mark.parametrize(("raw", "plain"), list(MARKUP.items()))
async def test_markup_is_stored_and_served_as_plain_text(
    system: System, raw: str, plain: str
) -> None:
    alice = await system.account("alice", display_name=raw[:50])
    profile = await system.auth.client.patch(
        "/api/v1/auth/me", json={"bio": raw}, headers=alice.headers
    )
    post = await system.posts.post("/api/v1/posts", json={"content": raw}, headers=alice.headers)
    assert profile.status_code == 200
    assert profile.json()["bio"] == plain
    assert post.status_code == 201
    assert post.json()["content"] == plain
    for response in (profile, post):
        assert response.headers["content-type"] == "application/json"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "<script" not in response.text.lower()


@pytest.mark.parametrize("text", ["null\x00byte", "escape\x1b[31m", "bell\x07", "lone \ud800"])
async def test_control_characters_are_refused_everywhere(system: System, text: str) -> None:
    alice = await system.account("alice")
    # json.dumps escapes as \uXXXX, so even a lone surrogate reaches the server as JSON.
    headers = {**alice.headers, "Content-Type": "application/json"}
    post = await system.posts.post(
        "/api/v1/posts", content=json.dumps({"content": text}), headers=headers
    )
    for field in ("display_name", "bio"):
        profile = await system.auth.client.patch(
            "/api/v1/auth/me", content=json.dumps({field: text}), headers=headers
        )
        assert profile.status_code == 422, field
    assert post.status_code == 422
    assert await system.auth.count("posts") == 0


async def test_text_is_unicode_normalised(system: System) -> None:
    alice = await system.account("alice")
    decomposed = "Cafe\u0301"  # "e" + combining acute accent
    post = await system.posts.post(
        "/api/v1/posts", json={"content": decomposed}, headers=alice.headers
    )
    assert post.json()["content"] == "Caf\u00e9"
