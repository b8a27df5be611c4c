"""A signing-key rotation seen through the gateway: its JWKS cache picks up the new key before
the first token signed with it arrives, and tokens of the old key stay valid.

Runs on a database of its own, so the rotation does not reach the other tests' instances.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agora.config import ServiceName
from tests.conftest import TEST_DB_NAME, scratch_database
from tests.e2e.conftest import Cluster, service_env
from tests.gateway.conftest import (
    PASSWORD,
    bearer,
    gateway_settings,
    register_and_login,
    start_gateway,
)

pytestmark = pytest.mark.e2e

# New keys sign 1.5 s after they are published; the gateway refetches every second.
FAST_ROTATION = {"AGORA_SIGNING_KEY_REFRESH_S": "1", "AGORA_JWKS_REFETCH_COOLDOWN_S": "0.5"}


@pytest.fixture(scope="module")
def rotation_database(postgres_admin_url: str) -> Iterator[str]:
    with scratch_database(postgres_admin_url, f"{TEST_DB_NAME}_rotation") as url:
        yield url


def kid_of(token: str) -> str:
    header = token.split(".", 1)[0]
    return str(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"])


def test_rotated_key_is_accepted_from_its_first_token(
    rotation_database: str, redis_url: str, tmp_path: Path
) -> None:
    env = {**service_env(rotation_database, redis_url), **FAST_ROTATION}
    cluster = Cluster(env=env, workdir=tmp_path)
    try:
        auth = cluster.start("auth")
        posts = cluster.start("posts")
        # realtime is not exercised here; its cluster points at posts' port for the render.
        ports: dict[ServiceName, list[int]] = {
            "auth": [auth.port],
            "posts": [posts.port],
            "realtime": [posts.port],
        }
        settings = gateway_settings(signing_key_refresh_s=1, jwks_refetch_cooldown_s=0.5)
        gateway = start_gateway(settings, ports, tmp_path / "gw")
        try:
            with httpx.Client(base_url=gateway.url, timeout=10) as client:
                _, old_token = register_and_login(client, "rotating_user")
                assert client.get("/api/v1/posts/feed", headers=bearer(old_token)).is_success

                rotated = subprocess.run(
                    [sys.executable, "-m", "agora", "keys", "rotate"],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                announced = re.search(r"new signing key (\S+):", rotated.stdout)
                assert announced is not None, rotated.stdout
                new_kid = announced.group(1)
                assert new_kid != kid_of(old_token)

                deadline = time.monotonic() + 20
                new_token = old_token
                while kid_of(new_token) != new_kid and time.monotonic() < deadline:
                    time.sleep(0.2)
                    login = client.post(
                        "/api/v1/auth/login",
                        json={"username": "rotating_user", "password": PASSWORD},
                    )
                    new_token = login.json()["access_token"]
                assert kid_of(new_token) == new_kid, "auth never signed with the new key"

                # The very first request with the new key's token passes the gateway.
                first = client.get("/api/v1/posts/feed", headers=bearer(new_token))
                assert first.status_code == 200, first.text
                # And the old key's tokens stay valid until they expire.
                old = client.get("/api/v1/posts/feed", headers=bearer(old_token))
                assert old.status_code == 200, old.text
        finally:
            gateway.stop()
    finally:
        cluster.stop_all()
