"""Signing keys encrypted at rest: never stored as plain PEM once a key is configured,
plain rows refused in production, and the migration (`agora keys encrypt`) that fixes them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Awaitable, Callable

import asyncpg
import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from pydantic import SecretStr

from agora.config import Settings
from agora.services.auth.app import create_app

AppClient = Callable[[FastAPI], Awaitable[httpx.AsyncClient]]


def _with_keys(settings: Settings, *keys: str, env: str = "development") -> Settings:
    return settings.model_copy(
        update={"key_encryption_key": [SecretStr(key) for key in keys], "env": env}
    )


async def _stored(settings: Settings) -> list[bytes]:
    conn = await asyncpg.connect(settings.require_database_url())
    try:
        return [bytes(row[0]) for row in await conn.fetch("SELECT private_key FROM signing_keys")]
    finally:
        await conn.close()


async def _can_log_in(client: httpx.AsyncClient) -> None:
    body = {"username": "alice", "email": "alice@example.com", "password": "correct horse battery"}
    await client.post("/api/v1/auth/register", json=body)
    login = await client.post("/api/v1/auth/login", json=body)
    assert login.status_code == 200
    me = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
    )
    assert me.status_code == 200


async def test_keys_are_stored_encrypted_when_a_key_is_configured(
    settings: Settings, app_client: AppClient
) -> None:
    configured = _with_keys(settings, Fernet.generate_key().decode())
    await _can_log_in(await app_client(create_app(configured)))
    [stored] = await _stored(settings)
    assert not stored.startswith(b"-----BEGIN")
    assert b"PRIVATE KEY" not in stored


def _agora(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agora", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_plain_rows_are_refused_in_production_until_encrypted(
    settings: Settings, app_client: AppClient
) -> None:
    # A development database with a plain PEM row, as before encryption existed.
    await _can_log_in(await app_client(create_app(settings)))
    [plain] = await _stored(settings)
    assert plain.startswith(b"-----BEGIN PRIVATE KEY-----")

    key = Fernet.generate_key().decode()
    with pytest.raises(ValueError, match="agora keys encrypt"):
        await app_client(create_app(_with_keys(settings, key, env="production")))

    env = {"AGORA_DATABASE_URL": settings.require_database_url(), "AGORA_KEY_ENCRYPTION_KEY": key}
    result = _agora(env, "keys", "encrypt")
    assert result.returncode == 0, result.stderr
    assert "1 signing keys encrypted" in result.stdout
    [sealed] = await _stored(settings)
    assert Fernet(key.encode()).decrypt(sealed) == plain

    await _can_log_in(await app_client(create_app(_with_keys(settings, key, env="production"))))


async def test_the_encryption_key_itself_rotates(settings: Settings, app_client: AppClient) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    await _can_log_in(await app_client(create_app(_with_keys(settings, old))))
    # New key first, old key still listed: everything loads; then re-encrypt with the new one.
    env = {
        "AGORA_DATABASE_URL": settings.require_database_url(),
        "AGORA_KEY_ENCRYPTION_KEY": f"{new},{old}",
    }
    assert _agora(env, "keys", "encrypt").returncode == 0
    [sealed] = await _stored(settings)
    Fernet(new.encode()).decrypt(sealed)
    await _can_log_in(await app_client(create_app(_with_keys(settings, new))))
    with pytest.raises(ValueError, match="does not decrypt"):
        await app_client(create_app(_with_keys(settings, Fernet.generate_key().decode())))
