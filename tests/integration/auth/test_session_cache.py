"""Session data in Redis: spent and revoked refresh tokens are known for as long as they
matter, and a replayed one is answered without a database transaction."""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import pytest
import redis

from agora.config import Settings
from agora.services.auth import repository as repo
from tests.integration.auth.conftest import AuthHarness

REFRESH = "/api/v1/auth/refresh"


def session_key(token: str) -> str:
    return f"agora:c:session:{hashlib.sha256(token.encode()).hexdigest()}"


async def test_spent_and_revoked_tokens_are_remembered_for_one_refresh_lifetime(
    auth: AuthHarness, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    await auth.register("alice")
    first = (await auth.login("alice"))["refresh_token"]
    second = (await auth.client.post(REFRESH, json={"refresh_token": first})).json()
    store = redis.Redis.from_url(settings.require_redis_url())
    try:
        spent = store.get(session_key(first))
        assert isinstance(spent, bytes)
        assert spent.startswith(b"spent ")
        ttl_ms = store.pttl(session_key(first))
        assert settings.refresh_token_ttl_s * 1000 - 5000 < ttl_ms
        assert ttl_ms <= settings.refresh_token_ttl_s * 1000

        locks = [0]
        original = repo.lock_refresh_token

        @functools.wraps(original)
        async def counted(*args: Any, **kwargs: Any) -> Any:
            locks[0] += 1
            return await original(*args, **kwargs)

        monkeypatch.setattr(repo, "lock_refresh_token", counted)
        # Replaying the spent token still revokes the family (the successor dies too) ...
        replay = await auth.client.post(REFRESH, json={"refresh_token": first})
        assert replay.json()["error"]["code"] == "refresh_token_reused"
        successor = await auth.client.post(REFRESH, json={"refresh_token": second["refresh_token"]})
        assert successor.status_code == 401
        # ... and a revoked token is refused from Redis: no row was locked for either replay.
        again = await auth.client.post(REFRESH, json={"refresh_token": first})
        assert again.json()["error"]["code"] == "invalid_refresh_token"
        assert locks[0] == 1  # only the successor's refresh went to the database
        assert store.get(session_key(first)) == b"revoked"
    finally:
        store.close()


LOGOUT = "/api/v1/auth/logout"


async def test_logout_records_only_a_real_sessions_token(
    auth: AuthHarness, settings: Settings
) -> None:
    """Logout of any string used to store a "revoked" fact for a refresh lifetime (30 days):
    a stream of random tokens grew Redis without bound. Now a token the database does not
    know adds no key; a real one adds exactly its mark."""
    await auth.register("alice")
    real = (await auth.login("alice"))["refresh_token"]
    auth.client.cookies.clear()
    store = redis.Redis.from_url(settings.require_redis_url())

    def kept() -> set[bytes]:
        # Rate-limit state comes and goes with every request (microseconds under the
        # suite's generous limits): not what logout stores.
        return {key for key in store.scan_iter("agora:*") if not key.startswith(b"agora:rl:")}

    try:
        before = kept()
        for forged in ("x" * 43, "not-a-token", "0" * 200):
            response = await auth.client.post(LOGOUT, json={"refresh_token": forged})
            assert response.status_code == 204  # unknown tokens are silently ignored
        assert kept() == before

        response = await auth.client.post(LOGOUT, json={"refresh_token": real})
        assert response.status_code == 204
        # The refresh token's "revoked" fact, and the session's end mark its access tokens
        # are refused by (agora.security.revocation).
        added = kept() - before
        assert session_key(real).encode() in added
        assert [key for key in added if key != session_key(real).encode()] == [
            key for key in added if key.startswith(b"agora:revoked-session:")
        ]
        assert len(added) == 2
        assert store.get(session_key(real)) == b"revoked"
    finally:
        store.close()
    refused = await auth.client.post(REFRESH, json={"refresh_token": real})
    assert refused.json()["error"]["code"] == "invalid_refresh_token"
