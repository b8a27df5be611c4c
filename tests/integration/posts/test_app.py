"""The app factory's default key source: auth's JWKS fetched over HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from fastapi import FastAPI

from agora.config import Settings
from agora.services.posts.app import create_app
from tests.conftest import TokenFactory


@pytest.fixture
def jwks_url(tokens: TokenFactory) -> Iterator[str]:
    """A stand-in for auth's JWKS endpoint, publishing the test signing key."""
    document = json.dumps({"keys": [tokens.key.public_jwk()]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/auth/.well-known/jwks.json"
    server.shutdown()
    server.server_close()


async def test_tokens_are_verified_with_keys_from_the_jwks_url(
    settings: Settings,
    tokens: TokenFactory,
    jwks_url: str,
    app_client: Callable[[FastAPI], Awaitable[httpx.AsyncClient]],
    make_user: Callable[[], str],
) -> None:
    app = create_app(settings.model_copy(update={"auth_jwks_url": jwks_url}))
    client = await app_client(app)
    alice = make_user()
    response = await client.post(
        "/api/v1/posts",
        json={"content": "hi"},
        headers={"Authorization": f"Bearer {tokens(alice)}"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["author_id"] == alice


async def test_without_reachable_jwks_every_token_is_refused(
    settings: Settings,
    tokens: TokenFactory,
    app_client: Callable[[FastAPI], Awaitable[httpx.AsyncClient]],
    make_user: Callable[[], str],
) -> None:
    unreachable = settings.model_copy(update={"auth_jwks_url": "http://127.0.0.1:1/jwks.json"})
    client = await app_client(create_app(unreachable))
    response = await client.get(
        "/api/v1/posts/feed", headers={"Authorization": f"Bearer {tokens(make_user())}"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"
