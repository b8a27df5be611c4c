"""RSA signing keys as JWKs: generation, ``kid`` thumbprints, PEM, encryption at rest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from jwt.utils import base64url_encode

if TYPE_CHECKING:
    from agora.config import Settings

RSA_KEY_BITS = 2048


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_jwk(self) -> dict[str, Any]:
        return public_jwk(self.public_key, self.kid)


def public_jwk(key: rsa.RSAPublicKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key))
    jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
    return jwk


def thumbprint(key: rsa.RSAPublicKey) -> str:
    """RFC 7638 JWK thumbprint: a ``kid`` derived from the key itself, stable everywhere."""
    jwk = json.loads(RSAAlgorithm.to_jwk(key))
    canonical = json.dumps(
        {"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True
    )
    digest = hashes.Hash(hashes.SHA256())
    digest.update(canonical.encode())
    return base64url_encode(digest.finalize()).decode()


def generate_signing_key() -> SigningKey:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    return SigningKey(kid=thumbprint(private_key.public_key()), private_key=private_key)


def load_signing_key(kid: str, private_pem: bytes) -> SigningKey:
    key = serialization.load_pem_private_key(private_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"signing key {kid} is not an RSA key")  # noqa: TRY004  # bad stored data, not a bug
    return SigningKey(kid=kid, private_key=key)


def public_key_from_jwk(jwk: dict[str, Any]) -> rsa.RSAPublicKey:
    key = RSAAlgorithm.from_jwk(jwk)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("JWK is not an RSA public key")  # noqa: TRY004  # bad remote data, not a bug
    return key


_PEM_PREFIX = b"-----BEGIN"


class PlaintextKeyRefused(ValueError):
    """A signing key is stored unencrypted where encryption at rest is required."""


class KeyCipher:
    """Encrypts private keys at rest with Fernet (AES-128-CBC + HMAC-SHA256, from
    ``cryptography``): authenticated, versioned, and ``MultiFernet`` lets the encryption key
    itself be rotated (new key first, old keys after it, then ``agora keys encrypt``).

    Without keys (development) new keys are stored as plain PKCS#8 PEM; rows stored that way
    load only while ``allow_plaintext`` holds (not in production).
    """

    def __init__(self, keys: list[str], *, allow_plaintext: bool) -> None:
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys]) if keys else None
        self._allow_plaintext = allow_plaintext

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyCipher:
        return cls(
            [key.get_secret_value() for key in settings.key_encryption_key],
            allow_plaintext=not settings.is_production,
        )

    @property
    def encrypts(self) -> bool:
        return self._fernet is not None

    def seal(self, key: SigningKey) -> bytes:
        """The stored form of ``key``: a Fernet token, or PEM when no key is configured."""
        pem = key.private_pem()
        return pem if self._fernet is None else self._fernet.encrypt(pem)

    def open(self, kid: str, stored: bytes) -> SigningKey:
        if self.is_plaintext(stored):
            if not self._allow_plaintext:
                raise PlaintextKeyRefused(
                    f"signing key {kid} is stored unencrypted; run `agora keys encrypt`"
                )
            return load_signing_key(kid, stored)
        if self._fernet is None:
            raise ValueError(
                f"signing key {kid} is encrypted and AGORA_KEY_ENCRYPTION_KEY is unset"
            )
        try:
            return load_signing_key(kid, self._fernet.decrypt(stored))
        except InvalidToken:
            raise _undecryptable(kid) from None

    def reseal(self, kid: str, stored: bytes) -> bytes:
        """``stored`` (plain PEM, or a token of any configured key) encrypted with the first key."""
        if self._fernet is None:
            raise ValueError("AGORA_KEY_ENCRYPTION_KEY is not set: nothing to encrypt with")
        if self.is_plaintext(stored):
            load_signing_key(kid, stored)  # refuse to wrap something that is not a key
            return self._fernet.encrypt(stored)
        try:
            return self._fernet.rotate(stored)
        except InvalidToken:
            raise _undecryptable(kid) from None

    @staticmethod
    def is_plaintext(stored: bytes) -> bool:
        return stored.startswith(_PEM_PREFIX)


def _undecryptable(kid: str) -> ValueError:
    return ValueError(f"signing key {kid} does not decrypt with any AGORA_KEY_ENCRYPTION_KEY")
