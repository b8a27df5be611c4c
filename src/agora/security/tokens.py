"""Access tokens: RS256 JWTs with a ``kid`` header, issued by auth and verified everywhere.

Verification is local (no database, no call to auth per request): the public key comes from
a ``KeyResolver`` — auth's own key store, or the JWKS cache in posts and realtime.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from agora.security.keys import SigningKey

ALGORITHM = "RS256"
REQUIRED_CLAIMS = ["sub", "iat", "exp", "iss", "aud", "jti"]


class InvalidToken(Exception):
    """The token is malformed, badly signed, expired or not meant for us."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified access token speaks for."""

    user_id: str
    token_id: str
    expires_at: int
    # The login session (refresh-token family) the token was issued for: ending the session
    # ends its access tokens too. None for a token minted without one (tests, tools).
    session_id: str | None = None
    # The ``kid`` of the key that signed the token: revoking that key ends what it opened
    # (realtime closes the sockets authenticated by it). None only where no key signed.
    key_id: str | None = None


class KeyResolver(Protocol):
    async def public_key(self, kid: str) -> rsa.RSAPublicKey | None:
        """The public key for ``kid``, or None when it is not (or no longer) trusted."""
        ...


@runtime_checkable
class RevocableKeyResolver(KeyResolver, Protocol):
    """A resolver that can be told at once that a key is revoked (``agora keys revoke``)."""

    def revoke(self, kid: str) -> None:
        """Never trust ``kid`` again."""
        ...

    def resync(self) -> None:
        """Revocations may have been missed: check the source of keys again soon."""
        ...


class StaticKeyResolver:
    """A fixed set of keys (tests, and tools that hold the keys themselves)."""

    def __init__(self, keys: dict[str, rsa.RSAPublicKey]) -> None:
        self._keys = dict(keys)

    async def public_key(self, kid: str) -> rsa.RSAPublicKey | None:
        return self._keys.get(kid)

    def revoke(self, kid: str) -> None:
        self._keys.pop(kid, None)

    def resync(self) -> None:
        pass  # nothing to reload: the keys are given


class TokenIssuer:
    def __init__(self, *, issuer: str, audience: str, ttl_s: int) -> None:
        self.issuer = issuer
        self.audience = audience
        self.ttl_s = ttl_s

    def issue(
        self,
        user_id: str,
        key: SigningKey,
        *,
        session_id: str | None = None,
        now: float | None = None,
    ) -> str:
        issued_at = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "sub": user_id,
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + self.ttl_s,
            "iss": self.issuer,
            "aud": self.audience,
            "jti": uuid.uuid4().hex,
        }
        if session_id is not None:
            claims["sid"] = session_id
        return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})


class TokenVerifier:
    """Verifies access tokens, remembering the ones it has verified.

    A client sends the same token for up to 15 minutes; parsing it and checking its RSA
    signature again on every request is wasted work. A remembered token (keyed by its exact
    text; only tokens that verified are remembered) is accepted without the signature check
    until it expires, as long as the key that signed it is still trusted: the key lookup is an
    in-memory one, and a withdrawn key takes its tokens with it at once.
    """

    def __init__(
        self,
        resolver: KeyResolver,
        *,
        issuer: str,
        audience: str,
        leeway_s: int = 30,
        cache_size: int = 10_000,
    ) -> None:
        self._resolver = resolver
        self._issuer = issuer
        self._audience = audience
        self._leeway_s = leeway_s
        self._cache: OrderedDict[str, tuple[float, str, Principal]] = OrderedDict()
        self._cache_size = cache_size

    def valid_until(self, principal: Principal) -> float:
        """Epoch seconds after which ``principal``'s token is refused (its expiry plus the
        clock-skew leeway): what a long-lived connection authenticated by it must not outlive."""
        return float(principal.expires_at + self._leeway_s)

    def revoke_key(self, kid: str) -> None:
        """Refuse every token ``kid`` signed from now on, remembered ones included."""
        if isinstance(self._resolver, RevocableKeyResolver):
            self._resolver.revoke(kid)
        for token, (_, signed_by, _) in list(self._cache.items()):
            if signed_by == kid:
                del self._cache[token]

    def resync(self) -> None:
        if isinstance(self._resolver, RevocableKeyResolver):
            self._resolver.resync()

    async def verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None:
            valid_until, kid, principal = cached
            if time.time() < valid_until and await self._resolver.public_key(kid) is not None:
                return principal
            del self._cache[token]
        kid, principal = await self._verify_signed(token)
        self._cache[token] = (principal.expires_at + self._leeway_s, kid, principal)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)  # the oldest entry
        return principal

    async def _verify_signed(self, token: str) -> tuple[str, Principal]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed token") from exc
        # Only RS256 is accepted: "none" and HMAC-with-the-public-key are refused here,
        # before any key is looked up, and again by the algorithms list below.
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("unsupported token algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("token has no key id")
        key = await self._resolver.public_key(kid)
        if key is None:
            raise InvalidToken("token signed by an unknown key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("invalid token") from exc
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise InvalidToken("invalid token subject")
        session = claims.get("sid")
        return kid, Principal(
            user_id=subject,
            token_id=str(claims["jti"]),
            expires_at=int(claims["exp"]),
            session_id=session if isinstance(session, str) and session else None,
            key_id=kid,
        )
