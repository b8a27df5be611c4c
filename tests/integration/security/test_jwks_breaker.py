"""The JWKS fetch behind the ``jwks`` circuit breaker, against a real HTTP server that can be
made to fail: failures open the breaker, an open breaker stops the fetches, and tokens keep
verifying with the last good keys throughout."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from agora.resilience import BreakerState, CircuitBreaker
from agora.security.jwks import JwksKeyResolver
from agora.security.keys import SigningKey, generate_signing_key


class FlakyJwks:
    def __init__(self, key: SigningKey) -> None:
        self.document = json.dumps({"keys": [key.public_jwk()]}).encode()
        self.failing = False
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                status, body = (500, b"{}") if owner.failing else (200, owner.document)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"


@pytest.fixture
def jwks() -> Iterator[tuple[FlakyJwks, SigningKey]]:
    key = generate_signing_key()
    flaky = FlakyJwks(key)
    thread = threading.Thread(target=flaky.server.serve_forever, daemon=True)
    thread.start()
    yield flaky, key
    flaky.server.shutdown()
    flaky.server.server_close()


async def test_failing_fetches_open_the_breaker_and_the_last_good_keys_keep_working(
    jwks: tuple[FlakyJwks, SigningKey],
) -> None:
    server, key = jwks
    breaker = CircuitBreaker("jwks", failure_threshold=3, open_s=60)
    async with httpx.AsyncClient(timeout=2.0) as client:
        resolver = JwksKeyResolver(
            server.url, client=client, refetch_cooldown_s=0.2, breaker=breaker
        )
        assert await resolver.public_key(key.kid) is not None
        server.failing = True
        await asyncio.sleep(0.3)  # past the cooldown that follows a good fetch
        # Unknown kids (a rotation, or forged tokens) ask for refetches; with a breaker the
        # cooldown no longer spaces failed attempts, the breaker bounds them.
        for attempt in range(5):
            assert await resolver.public_key(f"unknown-{attempt}") is None
        assert breaker.state is BreakerState.OPEN
        assert server.requests == 1 + 3  # the good fetch, then three failures: none once open
        assert await resolver.public_key(key.kid) is not None  # still verifying

        breaker.reset()
        server.failing = False
        await asyncio.sleep(0.3)
        assert await resolver.public_key("unknown-again") is None  # fetched again, closed
        assert server.requests == 5
        assert breaker.state is BreakerState.CLOSED
