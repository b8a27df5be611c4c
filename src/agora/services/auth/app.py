"""The auth service's ASGI app: accounts, sessions, profiles and the JWKS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from agora.app import build_app
from agora.cache import running_cache
from agora.config import Settings
from agora.runtime import Infrastructure, ServiceApp, ServiceParts
from agora.security.backoff import LoginBackoff, backoff_secret
from agora.security.passwords import PasswordHasher, is_common_password
from agora.security.tokens import KeyResolver, TokenIssuer, TokenVerifier
from agora.services.auth.keys import KeyStore
from agora.services.auth.parts import AuthParts
from agora.services.auth.routes import router
from agora.services.auth.service import AuthService
from agora.services.auth.sessions import SessionService


def create_app(
    settings: Settings,
    *,
    key_resolver: KeyResolver | None = None,  # noqa: ARG001  # every service's create_app takes it
) -> ServiceApp[AuthParts]:
    """``key_resolver`` is ignored: auth verifies its own tokens with its key store."""

    @asynccontextmanager
    async def start(infra: Infrastructure) -> AsyncIterator[ServiceParts[AuthParts]]:
        keystore = KeyStore(settings)
        await keystore.ensure_active_key(infra.db)
        issuer = TokenIssuer(
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_s=settings.access_token_ttl_s,
        )
        hasher = PasswordHasher.from_settings(settings)
        # Precomputed so the first login of an unknown user costs what a real one does, and
        # the first sign-up does not wait for the common-password list.
        await hasher.dummy_hash()
        await asyncio.to_thread(is_common_password, "")
        verifier = TokenVerifier(
            keystore,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway_s=settings.jwt_leeway_s,
        )
        async with running_cache(
            infra.redis, early_refresh_beta=settings.cache_early_refresh_beta
        ) as cache:
            kek = settings.key_encryption_key
            backoff = LoginBackoff(
                infra.redis,
                threshold=settings.login_backoff_threshold,
                max_s=settings.login_backoff_max_s,
                secret=backoff_secret(kek[0].get_secret_value() if kek else None),
            )
            auth = AuthService(
                db=infra.db,
                hasher=hasher,
                keystore=keystore,
                issuer=issuer,
                refresh_ttl_s=settings.refresh_token_ttl_s,
                backoff=backoff,
                deleted_users=infra.deleted_users,
                revoked_sessions=infra.revoked_sessions,
                cache=cache,
                profile_ttl_s=settings.cache_profile_ttl_s,
            )
            keystore.start()
            try:
                yield ServiceParts(
                    verifier=verifier,
                    parts=AuthParts(
                        auth=auth,
                        sessions=SessionService(
                            db=infra.db,
                            hasher=hasher,
                            backoff=backoff,
                            revoked_sessions=infra.revoked_sessions,
                        ),
                        keystore=keystore,
                        cache=cache,
                    ),
                )
            finally:
                await keystore.stop()

    return build_app("auth", settings, routers=[router], start=start)
