"""Refresh-token reuse revokes the session; key rotation keeps old tokens valid until they
expire on every service, and new tokens come signed by the new key."""

from __future__ import annotations

import asyncio

import jwt

from agora.config import Settings
from agora.services.auth.keys import rotate_signing_key, rotate_signing_key_if_due
from tests.security.conftest import PROTECTED, System, protected

REFRESH = "/api/v1/auth/refresh"


async def test_a_stolen_refresh_token_replayed_revokes_the_whole_family(system: System) -> None:
    alice = await system.account("alice")
    victim = await system.auth.client.post(REFRESH, json={"refresh_token": alice.refresh_token})
    assert victim.status_code == 200
    successor = victim.json()["refresh_token"]

    thief = await system.auth.client.post(REFRESH, json={"refresh_token": alice.refresh_token})
    assert thief.status_code == 401
    assert thief.json()["error"]["code"] == "refresh_token_reused"
    # The legitimate successor dies with the family: the thief cannot have raced ahead either.
    after = await system.auth.client.post(REFRESH, json={"refresh_token": successor})
    assert after.status_code == 401


async def _status(system: System, service: str, token: str) -> int:
    client = system.clients()[service]
    response = await client.get(
        protected(service, token), headers={"Authorization": f"Bearer {token}"}
    )
    return response.status_code


async def test_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key(
    system: System, settings: Settings
) -> None:
    alice = await system.account("alice")
    old_kid = jwt.get_unverified_header(alice.access_token)["kid"]

    new_key = await rotate_signing_key(system.auth.db, settings)
    # As if the activation delay had passed: the old key's scheduled retirement has come.
    await system.auth.db.pool.execute(
        "UPDATE signing_keys SET retired_at = now() - interval '1 second' WHERE kid = $1", old_kid
    )
    await system.auth.keystore.reload()
    fresh = await system.auth.login("alice")
    new_token = fresh["access_token"]

    assert jwt.get_unverified_header(new_token)["kid"] == new_key.kid != old_kid
    for service in PROTECTED:
        # posts and realtime meet the new kid for the first time and refetch the JWKS.
        assert await _status(system, service, new_token) == 200, service
        assert await _status(system, service, alice.access_token) == 200, service
    jwks = (await system.auth.client.get("/api/v1/auth/.well-known/jwks.json")).json()
    assert {key["kid"] for key in jwks["keys"]} == {old_kid, new_key.kid}


async def test_keys_rotate_on_schedule_exactly_once_across_instances(
    system: System, settings: Settings
) -> None:
    assert await rotate_signing_key_if_due(system.auth.db, settings) is None  # a fresh key
    await system.auth.db.pool.execute(
        "UPDATE signing_keys SET created_at = now() - make_interval(secs => $1)",
        float(settings.signing_key_rotation_s + 60),
    )
    # Three auth instances notice at once; one rotates.
    results = await asyncio.gather(
        *(rotate_signing_key_if_due(system.auth.db, settings) for _ in range(3))
    )
    rotated = [key for key in results if key is not None]
    assert len(rotated) == 1
    assert await system.auth.count("signing_keys") == 2
    assert await rotate_signing_key_if_due(system.auth.db, settings) is None
