"""TokenVerifier accepts only RS256 tokens of a trusted key, for us, unexpired and untampered."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from agora.security.keys import SigningKey, generate_signing_key
from agora.security.tokens import InvalidToken, StaticKeyResolver, TokenIssuer, TokenVerifier

ISSUER = "agora"
AUDIENCE = "agora"
USER_ID = "3f2b8c1e-0000-4000-8000-000000000001"


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return generate_signing_key()


@pytest.fixture
def issuer() -> TokenIssuer:
    return TokenIssuer(issuer=ISSUER, audience=AUDIENCE, ttl_s=900)


@pytest.fixture
def verifier(key: SigningKey) -> TokenVerifier:
    resolver = StaticKeyResolver({key.kid: key.public_key})
    return TokenVerifier(resolver, issuer=ISSUER, audience=AUDIENCE, leeway_s=30)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def _claims(issuer: TokenIssuer, key: SigningKey) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(
        issuer.issue(USER_ID, key), options={"verify_signature": False}
    )
    return claims


async def test_a_genuine_token_verifies(
    issuer: TokenIssuer, verifier: TokenVerifier, key: SigningKey
) -> None:
    token = issuer.issue(USER_ID, key)

    principal = await verifier.verify(token)

    assert principal.user_id == USER_ID
    assert principal.token_id
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    assert header["kid"] == key.kid
    claims = _claims(issuer, key)
    assert set(claims) >= {"sub", "iat", "nbf", "exp", "iss", "aud", "jti"}
    assert claims["exp"] - claims["iat"] == 900


async def test_alg_none_is_refused(
    issuer: TokenIssuer, verifier: TokenVerifier, key: SigningKey
) -> None:
    unsigned = ".".join(
        [
            _segment({"alg": "none", "typ": "JWT", "kid": key.kid}),
            _segment(_claims(issuer, key)),
            "",
        ]
    )

    with pytest.raises(InvalidToken, match="algorithm"):
        await verifier.verify(unsigned)


async def test_hs256_signed_with_the_public_key_pem_is_refused(
    issuer: TokenIssuer, verifier: TokenVerifier, key: SigningKey
) -> None:
    """The classic key-confusion attack: the public key used as an HMAC secret."""
    public_pem = key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = ".".join(
        [_segment({"alg": "HS256", "typ": "JWT", "kid": key.kid}), _segment(_claims(issuer, key))]
    )
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()

    with pytest.raises(InvalidToken, match="algorithm"):
        await verifier.verify(f"{signing_input}.{_b64(signature)}")


async def test_a_tampered_payload_is_refused(
    issuer: TokenIssuer, verifier: TokenVerifier, key: SigningKey
) -> None:
    header, _, signature = issuer.issue(USER_ID, key).split(".")
    claims = _claims(issuer, key)
    claims["sub"] = "3f2b8c1e-0000-4000-8000-000000000002"

    with pytest.raises(InvalidToken, match="invalid token"):
        await verifier.verify(f"{header}.{_segment(claims)}.{signature}")


async def test_an_expired_token_is_refused(
    issuer: TokenIssuer, verifier: TokenVerifier, key: SigningKey
) -> None:
    token = issuer.issue(USER_ID, key, now=time.time() - 900 - 31)

    with pytest.raises(InvalidToken, match="expired"):
        await verifier.verify(token)


async def test_expiry_allows_the_configured_leeway(
    issuer: TokenIssuer, verifier: TokenVerifier, key: SigningKey
) -> None:
    token = issuer.issue(USER_ID, key, now=time.time() - 900 - 10)

    assert (await verifier.verify(token)).user_id == USER_ID


async def test_an_unknown_kid_is_refused(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    stranger = generate_signing_key()

    with pytest.raises(InvalidToken, match="unknown key"):
        await verifier.verify(issuer.issue(USER_ID, stranger))


async def test_a_known_kid_with_another_keys_signature_is_refused(
    issuer: TokenIssuer, verifier: TokenVerifier, key: SigningKey
) -> None:
    impostor = SigningKey(kid=key.kid, private_key=generate_signing_key().private_key)

    with pytest.raises(InvalidToken, match="invalid token"):
        await verifier.verify(issuer.issue(USER_ID, impostor))


async def test_a_missing_kid_is_refused(
    issuer: TokenIssuer, verifier: TokenVerifier, key: SigningKey
) -> None:
    token = jwt.encode(_claims(issuer, key), key.private_key, algorithm="RS256")

    with pytest.raises(InvalidToken, match="key id"):
        await verifier.verify(token)


@pytest.mark.parametrize(
    ("issuer_name", "audience"), [(ISSUER, "someone-else"), ("evil", AUDIENCE)], ids=["aud", "iss"]
)
async def test_wrong_audience_or_issuer_is_refused(
    verifier: TokenVerifier, key: SigningKey, issuer_name: str, audience: str
) -> None:
    other = TokenIssuer(issuer=issuer_name, audience=audience, ttl_s=900)

    with pytest.raises(InvalidToken, match="invalid token"):
        await verifier.verify(other.issue(USER_ID, key))


@pytest.mark.parametrize("claim", ["sub", "exp", "iat", "iss", "aud", "jti"])
async def test_a_token_missing_a_required_claim_is_refused(
    issuer: TokenIssuer, verifier: TokenVerifier, key: SigningKey, claim: str
) -> None:
    claims = _claims(issuer, key)
    del claims[claim]
    token = jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})

    with pytest.raises(InvalidToken):
        await verifier.verify(token)


@pytest.mark.parametrize("garbage", ["", "garbage", "a.b.c", "x" * 5000])
async def test_garbage_is_refused(verifier: TokenVerifier, garbage: str) -> None:
    with pytest.raises(InvalidToken):
        await verifier.verify(garbage)
