"""The verifier remembers verified tokens, but never past their expiry or their key."""

from __future__ import annotations

import asyncio
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from agora.security.keys import generate_signing_key
from agora.security.tokens import InvalidToken, TokenIssuer, TokenVerifier


class MutableResolver:
    def __init__(self, keys: dict[str, rsa.RSAPublicKey]) -> None:
        self.keys = keys
        self.lookups = 0

    async def public_key(self, kid: str) -> rsa.RSAPublicKey | None:
        self.lookups += 1
        return self.keys.get(kid)


KEY = generate_signing_key()
ISSUER = TokenIssuer(issuer="agora", audience="agora", ttl_s=900)


def _verifier(resolver: MutableResolver, **kwargs: int) -> TokenVerifier:
    return TokenVerifier(resolver, issuer="agora", audience="agora", leeway_s=0, **kwargs)


async def test_a_remembered_token_stops_working_when_its_key_is_withdrawn() -> None:
    resolver = MutableResolver({KEY.kid: KEY.public_key})
    verifier = _verifier(resolver)
    token = ISSUER.issue("user-1", KEY)
    assert (await verifier.verify(token)).user_id == "user-1"
    assert (await verifier.verify(token)).user_id == "user-1"

    del resolver.keys[KEY.kid]

    with pytest.raises(InvalidToken, match="unknown key"):
        await verifier.verify(token)


async def test_a_remembered_token_stops_working_when_it_expires() -> None:
    verifier = _verifier(MutableResolver({KEY.kid: KEY.public_key}))
    short = TokenIssuer(issuer="agora", audience="agora", ttl_s=1)
    token = short.issue("user-1", KEY, now=time.time())
    await verifier.verify(token)

    await asyncio.sleep(2.1)

    with pytest.raises(InvalidToken, match="expired"):
        await verifier.verify(token)


async def test_a_refused_token_is_not_remembered() -> None:
    resolver = MutableResolver({})
    verifier = _verifier(resolver)
    token = ISSUER.issue("user-1", KEY)
    with pytest.raises(InvalidToken):
        await verifier.verify(token)

    resolver.keys[KEY.kid] = KEY.public_key  # now trusted: verified for real this time
    assert (await verifier.verify(token)).user_id == "user-1"


async def test_the_memory_is_bounded_and_forgets_the_oldest_first() -> None:
    resolver = MutableResolver({KEY.kid: KEY.public_key})
    verifier = _verifier(resolver, cache_size=2)
    tokens = [ISSUER.issue(f"user-{i}", KEY) for i in range(3)]
    for token in tokens:
        await verifier.verify(token)

    other = generate_signing_key()
    resolver.keys[KEY.kid] = other.public_key  # only a full check notices the wrong key now
    with pytest.raises(InvalidToken):
        await verifier.verify(tokens[0])  # forgotten: checked again, and refused
    assert (await verifier.verify(tokens[2])).user_id == "user-2"  # still remembered
