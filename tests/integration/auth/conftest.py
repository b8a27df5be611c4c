"""An in-process auth app on the test PostgreSQL and Redis, and helpers to sign up and log in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from agora.config import Settings
from agora.db import Database
from agora.runtime import ServiceApp
from agora.services.auth.app import create_app
from agora.services.auth.keys import KeyStore

PASSWORD = "correct horse battery"


@dataclass
class AuthHarness:
    app: ServiceApp[Any]
    client: httpx.AsyncClient

    @property
    def db(self) -> Database:
        db: Database = self.app.runtime.infra.db
        return db

    @property
    def keystore(self) -> KeyStore:
        keystore: KeyStore = self.app.runtime.parts.keystore
        return keystore

    async def register(self, username: str = "alice", **fields: Any) -> dict[str, Any]:
        body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
        body.update(fields)
        response = await self.client.post("/api/v1/auth/register", json=body)
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()
        return data

    async def login(self, username: str = "alice", password: str = PASSWORD) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/auth/login", json={"username": username, "password": password}
        )
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    async def count(self, table: str) -> int:
        count: int = await self.db.fetchval(f"SELECT count(*) FROM {table}")
        return count


@pytest.fixture
async def auth(settings: Settings, app_client: Callable[[ServiceApp[Any]], Any]) -> AuthHarness:
    app = create_app(settings)
    client: httpx.AsyncClient = await app_client(app)
    return AuthHarness(app=app, client=client)
