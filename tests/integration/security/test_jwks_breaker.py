"""The JWKS fetch behind the ``jwks`` circuit breaker, against a real HTTP server that can be
made to fail: failures open the breaker, an open breaker stops the fetches, and tokens keep
verifying with the last good keys throughout."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from agora.resilience import BreakerState, CircuitBreaker
from agora.security.jwks import JwksKeyResolver
from agora.security.keys import SigningKey, generate_signing_key
from tests.jwks_server import JwksServer, jwks_server


@pytest.fixture
def jwks() -> Iterator[tuple[JwksServer, SigningKey]]:
    key = generate_signing_key()
    with jwks_server(key) as server:
        yield server, key


async def test_failing_fetches_open_the_breaker_and_the_last_good_keys_keep_working(
    jwks: tuple[JwksServer, SigningKey],
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
