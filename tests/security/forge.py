"""Forged access tokens: every way an attacker may try to get a token accepted."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

from agora.security.keys import SigningKey, generate_signing_key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def forged_tokens(
    real: SigningKey, *, user_id: str, genuine: str, issuer: str = "agora", audience: str = "agora"
) -> dict[str, str]:
    """Tokens for ``user_id`` that must all be refused. ``real`` is the key the services trust,
    ``genuine`` a valid token (of another user) whose signature a tampered one reuses."""
    now = int(time.time())
    claims = {
        "sub": user_id,
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "iss": issuer,
        "aud": audience,
        "jti": "forged",
    }
    foreign = generate_signing_key()
    public_pem = real.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs256_input = _unsigned({"alg": "HS256", "typ": "JWT", "kid": real.kid}, claims)
    hs256_signature = hmac.new(public_pem, hs256_input.encode(), hashlib.sha256).digest()
    header_b64, _, signature_b64 = genuine.split(".")
    tampered_claims = _b64(json.dumps(claims).encode())

    def signed(key: SigningKey, kid: str | None = None, **changes: Any) -> str:
        headers = {"kid": kid if kid is not None else key.kid}
        return jwt.encode({**claims, **changes}, key.private_key, "RS256", headers=headers)

    return {
        "alg none": _unsigned({"alg": "none", "typ": "JWT", "kid": real.kid}, claims) + ".",
        "alg None": _unsigned({"alg": "None", "typ": "JWT", "kid": real.kid}, claims) + ".",
        "tampered payload": f"{header_b64}.{tampered_claims}.{signature_b64}",
        "foreign key under the real kid": signed(foreign, kid=real.kid),
        "unknown kid": signed(foreign),
        "no kid": jwt.encode(claims, real.private_key, "RS256"),
        "expired": signed(real, iat=now - 7200, nbf=now - 7200, exp=now - 3600),
        "not yet valid": signed(real, nbf=now + 3600),
        "issued in the future": signed(real, iat=now + 3600),
        "wrong audience": signed(real, aud="someone-else"),
        "wrong issuer": signed(real, iss="evil"),
        "HS256 signed with the public key": f"{hs256_input}.{_b64(hs256_signature)}",
        "RS512": jwt.encode(claims, real.private_key, "RS512", headers={"kid": real.kid}),
        "garbage": "not.a.token",
    }
