"""The JWKS cache of posts and realtime: auth's public keys, fetched over HTTP and kept.

An unknown ``kid`` triggers a refetch (a key was rotated in), but at most once per cooldown,
so a flood of tokens with made-up ``kid``s cannot turn into a flood of requests to auth.
When auth cannot be reached the last good keys keep working, and the ``jwks`` circuit
breaker stops even the refetch attempts until its open period ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from agora.config import Settings
from agora.observability import tracing
from agora.observability.logging import get_logger
from agora.resilience.breaker import CircuitBreaker, CircuitOpenError
from agora.security.keys import public_key_from_jwk
from agora.security.tokens import KeyResolver, TokenVerifier

log = get_logger(__name__)


class JwksKeyResolver:
    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient,
        refetch_cooldown_s: float = 10.0,
        max_age_s: float = 300.0,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._url = url
        self._breaker = breaker
        self._client = client
        self._cooldown_s = refetch_cooldown_s
        self._max_age_s = max_age_s
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        # Revoked while this process runs: never trusted again, even from a JWKS document
        # served by an auth instance that has not reloaded yet.
        self._revoked: set[str] = set()
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._attempts = 0
        self._lock = asyncio.Lock()

    def revoke(self, kid: str) -> None:
        self._revoked.add(kid)
        self._keys.pop(kid, None)
        # The revoked key's successor may sign any moment: let its first token refetch at once.
        self._attempted_at = float("-inf")

    def resync(self) -> None:
        """The next token refetches (revocations announced while we were away are caught)."""
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")

    async def public_key(self, kid: str) -> rsa.RSAPublicKey | None:
        if kid in self._revoked:
            return None
        stale = time.monotonic() - self._fetched_at > self._max_age_s
        if kid not in self._keys or stale:
            await self.refresh()
        return self._keys.get(kid)

    async def refresh(self) -> None:
        """Refetch unless one was tried within the cooldown; concurrent callers share one fetch."""
        attempts_before = self._attempts
        async with self._lock:
            if self._attempts != attempts_before:
                return  # another caller fetched while we waited for the lock
            if time.monotonic() - self._attempted_at < self._cooldown_s:
                return
            self._attempts += 1
            self._attempted_at = time.monotonic()
            try:
                keys = await self._fetch()
                self._keys = {kid: key for kid, key in keys.items() if kid not in self._revoked}
                self._fetched_at = time.monotonic()
            except CircuitOpenError:
                pass  # auth is known to be failing: the last good keys stay, nobody waits
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                log.warning("jwks fetch failed; keeping the last good keys", error=str(exc))
                if self._breaker is not None:
                    # The breaker, not the cooldown, paces retries of a failing auth: a few
                    # quick tries, then none for its open period.
                    self._attempted_at = float("-inf")

    async def _fetch(self) -> dict[str, rsa.RSAPublicKey]:
        if self._breaker is None:
            return await self._fetch_once()
        with self._breaker.guard():
            return await self._fetch_once()

    async def _fetch_once(self) -> dict[str, rsa.RSAPublicKey]:
        response = await self._client.get(self._url)
        response.raise_for_status()
        return self._parse(response.json())

    @staticmethod
    def _parse(document: Any) -> dict[str, rsa.RSAPublicKey]:
        keys: dict[str, rsa.RSAPublicKey] = {}
        for jwk in document["keys"]:
            if jwk.get("kty") == "RSA" and jwk.get("alg", "RS256") == "RS256" and "kid" in jwk:
                keys[jwk["kid"]] = public_key_from_jwk(jwk)
        return keys


@asynccontextmanager
async def jwks_token_verifier(
    settings: Settings,
    key_resolver: KeyResolver | None = None,
    *,
    breaker: CircuitBreaker | None = None,
) -> AsyncIterator[TokenVerifier]:
    """The token verifier of a service that trusts auth's JWKS (posts, realtime).

    Keys are fetched on first use and on an unknown ``kid``, not at start: auth may come up
    later, and a failed start-up fetch would only block refetching for the cooldown. Tests pass
    ``key_resolver`` with the keys they trust.
    """
    async with AsyncExitStack() as stack:
        if key_resolver is None:
            client = await stack.enter_async_context(httpx.AsyncClient(timeout=2.0))
            tracing.instrument_http_client(client, peer_service="agora-auth")
            key_resolver = JwksKeyResolver(
                settings.auth_jwks_url,
                client=client,
                refetch_cooldown_s=settings.jwks_refetch_cooldown_s,
                breaker=breaker,
            )
        yield TokenVerifier(
            key_resolver,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway_s=settings.jwt_leeway_s,
        )
