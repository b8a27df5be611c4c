"""What only the auth service holds in its runtime (``agora.runtime.Runtime.parts``)."""

from __future__ import annotations

from dataclasses import dataclass

from agora.cache import CacheService
from agora.services.auth.keys import KeyStore
from agora.services.auth.service import AuthService
from agora.services.auth.sessions import SessionService


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthParts:
    auth: AuthService
    sessions: SessionService
    keystore: KeyStore
    cache: CacheService
