"""Signing keys: the JWKS, verification by an independent JOSE library, rotation, first start."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import httpx
import jwt as pyjwt
import pytest
from fastapi import FastAPI
from joserfc import jwt as jose_jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet, KeySetSerialization
from joserfc.jwt import JWTClaimsRegistry

from agora.config import Settings
from agora.db import Database
from agora.security.keys import generate_signing_key
from agora.security.tokens import TokenIssuer
from agora.services.auth.app import create_app
from agora.services.auth.keys import RETIRED_KEY_GRACE_S, KeyStore, rotate_signing_key
from tests.integration.auth.conftest import AuthHarness

JWKS = "/api/v1/auth/.well-known/jwks.json"
ME = "/api/v1/auth/me"


def _key_set(document: dict[str, Any]) -> KeySet:
    return KeySet.import_key_set(cast(KeySetSerialization, document))


async def _jwks(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get(JWKS)
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _kids(document: dict[str, Any]) -> set[str]:
    return {key["kid"] for key in document["keys"]}


async def _me_status(auth: AuthHarness, token: str) -> int:
    response = await auth.client.get(ME, headers={"Authorization": f"Bearer {token}"})
    return response.status_code


async def test_access_token_verifies_against_the_published_jwks_with_joserfc(
    auth: AuthHarness, settings: Settings
) -> None:
    user = await auth.register("alice")
    token = (await auth.login("alice"))["access_token"]

    response = await auth.client.get(JWKS)

    assert response.headers["cache-control"] == "public, max-age=60"
    document = response.json()
    assert len(document["keys"]) == 1
    for jwk in document["keys"]:
        assert (jwk["kty"], jwk["use"], jwk["alg"]) == ("RSA", "sig", "RS256")
        assert jwk["kid"]
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk), "private parameters leaked"
    decoded = jose_jwt.decode(token, _key_set(document), algorithms=["RS256"])
    assert decoded.header["alg"] == "RS256"
    assert decoded.header["kid"] in _kids(document)
    claims = decoded.claims
    JWTClaimsRegistry(
        iss={"essential": True, "value": settings.jwt_issuer},
        aud={"essential": True, "value": settings.jwt_audience},
        sub={"essential": True, "value": user["id"]},
        exp={"essential": True},
        iat={"essential": True},
        nbf={"essential": True},
        jti={"essential": True},
    ).validate(claims)
    assert 0 < claims["exp"] - claims["iat"] <= 900


async def test_joserfc_refuses_a_token_with_a_forged_signature(auth: AuthHarness) -> None:
    """The check above could pass vacuously if the library did not verify; it does."""
    await auth.register("alice")
    token = (await auth.login("alice"))["access_token"]
    kid = pyjwt.get_unverified_header(token)["kid"]
    forged = pyjwt.encode(
        pyjwt.decode(token, options={"verify_signature": False}),
        generate_signing_key().private_key,
        algorithm="RS256",
        headers={"kid": kid},
    )

    with pytest.raises(BadSignatureError):
        jose_jwt.decode(forged, _key_set(await _jwks(auth.client)))


async def test_rotation_signs_with_the_new_key_and_keeps_the_old_one_published(
    auth: AuthHarness, settings: Settings
) -> None:
    await auth.register("alice")
    old_token = (await auth.login("alice"))["access_token"]
    old_kid = pyjwt.get_unverified_header(old_token)["kid"]

    new_key = await rotate_signing_key(auth.db, settings)
    await auth.keystore.reload()

    # Published at once, but not used until every consumer can have fetched it.
    assert _kids(await _jwks(auth.client)) == {old_kid, new_key.kid}
    early_token = (await auth.login("alice"))["access_token"]
    assert pyjwt.get_unverified_header(early_token)["kid"] == old_kid

    await _retire_now(auth, old_kid)
    await auth.keystore.reload()
    new_token = (await auth.login("alice"))["access_token"]

    assert new_key.kid != old_kid
    assert pyjwt.get_unverified_header(new_token)["kid"] == new_key.kid
    assert await _me_status(auth, old_token) == 200
    assert await _me_status(auth, new_token) == 200
    assert _kids(await _jwks(auth.client)) == {old_kid, new_key.kid}
    active = await auth.db.fetchval(
        "SELECT count(*) FROM signing_keys WHERE retired_at IS NULL OR retired_at > now()"
    )
    assert active == 1

    # Once every token the old key signed has expired (plus the grace), it is gone.
    await auth.db.pool.execute(
        "UPDATE signing_keys SET retired_at = now() - make_interval(secs => $2) WHERE kid = $1",
        old_kid,
        float(settings.access_token_ttl_s + RETIRED_KEY_GRACE_S + 1),
    )
    await auth.keystore.reload()

    assert _kids(await _jwks(auth.client)) == {new_key.kid}
    assert await _me_status(auth, old_token) == 401
    assert await _me_status(auth, new_token) == 200


async def _retire_now(auth: AuthHarness, kid: str) -> None:
    """As if the scheduled retirement of the rotated-out key had come."""
    await auth.db.pool.execute(
        "UPDATE signing_keys SET retired_at = now() - interval '1 second' WHERE kid = $1", kid
    )


async def test_a_key_retired_within_the_grace_window_is_still_published(
    auth: AuthHarness, settings: Settings
) -> None:
    old_kid = auth.keystore.current().kid
    await rotate_signing_key(auth.db, settings)
    await auth.db.pool.execute(
        "UPDATE signing_keys SET retired_at = now() - make_interval(secs => $2) WHERE kid = $1",
        old_kid,
        float(settings.access_token_ttl_s + RETIRED_KEY_GRACE_S - 30),
    )

    await auth.keystore.reload()

    assert old_kid in _kids(await _jwks(auth.client))


async def test_an_unknown_kid_makes_auth_reload_its_keys_with_a_cooldown(
    auth: AuthHarness, settings: Settings
) -> None:
    """Another instance rotated: its tokens verify here before the periodic reload."""
    user = await auth.register("alice")
    issuer = TokenIssuer(issuer=settings.jwt_issuer, audience=settings.jwt_audience, ttl_s=60)
    first = await rotate_signing_key(auth.db, settings)
    second = await rotate_signing_key(auth.db, settings)

    # The unknown kid triggers one reload, which brings in both new keys...
    assert await _me_status(auth, issuer.issue(user["id"], second)) == 200
    assert await _me_status(auth, issuer.issue(user["id"], first)) == 200
    # ...but within the cooldown a further unknown kid does not reach the database again.
    third = await rotate_signing_key(auth.db, settings)
    assert await _me_status(auth, issuer.issue(user["id"], third)) == 401


async def test_keys_are_reloaded_in_the_background(
    settings: Settings, app_client: Callable[[FastAPI], Any]
) -> None:
    fast = settings.model_copy(
        update={"signing_key_refresh_s": 0.1, "jwks_refetch_cooldown_s": 0.0}
    )
    app = create_app(fast)
    await app_client(app)
    keystore: KeyStore = app.runtime.parts.keystore

    new_key = await rotate_signing_key(app.runtime.infra.db, fast)

    for _ in range(100):  # up to 5 s
        if keystore.current().kid == new_key.kid:
            break
        await asyncio.sleep(0.05)
    assert keystore.current().kid == new_key.kid


async def test_keys_retired_by_hand_are_replaced_on_reload(auth: AuthHarness) -> None:
    old_kid = auth.keystore.current().kid
    await auth.db.pool.execute("UPDATE signing_keys SET retired_at = now()")

    await auth.keystore.reload()

    assert auth.keystore.current().kid != old_kid
    await auth.register("alice")
    assert await _me_status(auth, (await auth.login("alice"))["access_token"]) == 200


async def test_concurrent_first_starts_create_exactly_one_key(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keys made in advance: RSA generation time would otherwise stagger the processes so
    # much that they never race.
    ready_keys = [generate_signing_key() for _ in range(6)]
    monkeypatch.setattr("agora.services.auth.keys.generate_signing_key", ready_keys.pop)
    url = settings.require_database_url()
    databases = [Database(url, min_size=1, max_size=2) for _ in range(6)]
    await asyncio.gather(*(db.connect() for db in databases))
    try:
        stores = [KeyStore(settings) for _ in databases]

        keys = await asyncio.gather(
            *(store.ensure_active_key(db) for store, db in zip(stores, databases, strict=True))
        )

        assert await databases[0].fetchval("SELECT count(*) FROM signing_keys") == 1
        assert len({key.kid for key in keys}) == 1
        assert {store.published_jwks()[0]["kid"] for store in stores} == {keys[0].kid}
    finally:
        await asyncio.gather(*(db.close() for db in databases))
