"""The security layers of every service's app (middleware, docs, deleted-user checks).

``build_app`` calls ``install_request_guards`` before it adds the request-context middleware
(so limits and CORS answers carry a request id and are counted) and ``install_headers`` after
it (so every response, the last-resort 500 included, gets the security headers).
"""

from __future__ import annotations

from fastapi import FastAPI
from redis.asyncio import Redis
from starlette.middleware.cors import CORSMiddleware

from agora.config import ServiceName, Settings
from agora.db import Database
from agora.resilience import CircuitBreaker
from agora.security.docs import docs_available, mount_docs
from agora.security.headers import SecurityHeadersMiddleware
from agora.security.limits import RequestLimitsMiddleware
from agora.security.revocation import DeletedUsers

CORS_ALLOWED_HEADERS = ["Authorization", "Content-Type", "X-CSRF-Token", "X-Request-ID"]
CORS_EXPOSED_HEADERS = ["X-Request-ID", "Retry-After"]


def deleted_users_store(
    redis: Redis, db: Database, settings: Settings, breaker: CircuitBreaker
) -> DeletedUsers:
    # A mark must outlive every access token the user may hold, leeway included.
    ttl_s = settings.access_token_ttl_s + settings.jwt_leeway_s + 60
    return DeletedUsers(
        redis,
        db,
        ttl_s=ttl_s,
        breaker=breaker,
        events_channel=settings.events_channel,
        publish_timeout_s=settings.redis_socket_timeout_s,
    )


def install_request_guards(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(
        RequestLimitsMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_json_depth=settings.max_json_depth,
        timeout_s=settings.request_timeout_s,
    )
    if settings.cors_origins:
        wildcard = "*" in settings.cors_origins
        app.add_middleware(
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


def install_headers(app: FastAPI, service: ServiceName, settings: Settings) -> None:
    prefix = f"/api/v1/{service}"
    docs_csp = None
    if not settings.is_production and docs_available():
        docs_csp = mount_docs(app, prefix=prefix, openapi_url=f"{prefix}/openapi.json")
    app.add_middleware(
        SecurityHeadersMiddleware,
        no_store=service == "auth",
        docs_prefix=f"{prefix}/docs" if docs_csp else None,
        docs_csp=docs_csp,
    )
