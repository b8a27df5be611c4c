"""The security parts of every service's middleware stack, built from the settings: CORS, and
the deleted-users and ended-sessions stores the identity checks consult. Their place in the
stack is declared once, in ``agora.app.middleware_stack``."""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from agora.config import Settings
from agora.db import Database
from agora.redis.access import RedisAccess
from agora.security.revocation import DeletedUsers, RevokedSessions

CORS_ALLOWED_HEADERS = ["Authorization", "Content-Type", "X-CSRF-Token", "X-Request-ID"]
CORS_EXPOSED_HEADERS = ["X-Request-ID", "Retry-After"]


def _mark_ttl_s(settings: Settings) -> int:
    # A mark must outlive every access token it refuses, leeway included.
    return settings.access_token_ttl_s + settings.jwt_leeway_s + 60


def deleted_users_store(access: RedisAccess, db: Database, settings: Settings) -> DeletedUsers:
    ttl_s, channel = _mark_ttl_s(settings), settings.events_channel
    return DeletedUsers(access, db, ttl_s=ttl_s, events_channel=channel)


def revoked_sessions_store(
    access: RedisAccess, db: Database, settings: Settings
) -> RevokedSessions:
    ttl_s, channel = _mark_ttl_s(settings), settings.events_channel
    return RevokedSessions(access, db, ttl_s=ttl_s, events_channel=channel)


def cors(settings: Settings) -> Middleware:
    wildcard = "*" in settings.cors_origins
    return Middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        # Credentials (the refresh cookie) never go to "any origin": with "*" the browser
        # gets no Access-Control-Allow-Credentials, so cookies stay out of it.
        allow_credentials=not wildcard,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=CORS_ALLOWED_HEADERS,
        expose_headers=CORS_EXPOSED_HEADERS,
        max_age=600,
    )
