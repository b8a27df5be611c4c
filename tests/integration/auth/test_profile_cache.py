"""Profiles through the cache: a repeat read makes no query; an update is seen at once."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from agora.services.auth import repository as repo
from tests.integration.auth.conftest import AuthHarness


def count_calls(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    calls = [0]
    original = getattr(repo, name)

    @functools.wraps(original)
    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return await original(*args, **kwargs)

    monkeypatch.setattr(repo, name, counted)
    return calls


async def test_profiles_are_cached_and_an_update_invalidates_them(
    auth: AuthHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await auth.register("alice", display_name="Alice")
    headers = {"Authorization": f"Bearer {(await auth.login('alice'))['access_token']}"}
    public_reads = count_calls(monkeypatch, "get_public_user")
    own_reads = count_calls(monkeypatch, "get_own_user")
    public = f"/api/v1/auth/users/{user['id']}"
    # Mixed-case ids name the same user: they must share the entry and its invalidation.
    shouting = f"/api/v1/auth/users/{user['id'].upper()}"
    for _ in range(4):
        assert (await auth.client.get(public)).json()["display_name"] == "Alice"
        assert (await auth.client.get(shouting)).json()["display_name"] == "Alice"
        assert (await auth.client.get("/api/v1/auth/me", headers=headers)).status_code == 200
    assert public_reads[0] == 1
    assert own_reads[0] == 1

    response = await auth.client.patch(
        "/api/v1/auth/me", json={"display_name": "Alice B."}, headers=headers
    )
    assert response.status_code == 200
    assert (await auth.client.get(public)).json()["display_name"] == "Alice B."
    assert (await auth.client.get(shouting)).json()["display_name"] == "Alice B."
    me = (await auth.client.get("/api/v1/auth/me", headers=headers)).json()
    assert me["display_name"] == "Alice B."
