"""Builds one service's ASGI app: error contract, middleware stack, lifespan, probes, metrics.

Each service module supplies its routers and a lifespan hook for what only it needs; the
shared resources (database pool, Redis client, settings) live on ``app.state``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

import agora
from agora.cache.client import create_redis
from agora.config import ServiceName, Settings
from agora.db import Database
from agora.errors import ApiError, error_body
from agora.health import install_health, running_checks
from agora.observability.logging import get_logger
from agora.observability.middleware import RequestContextMiddleware

log = get_logger(__name__)

ServiceLifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def json_error(
    status: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> Response:
    return Response(
        error_body(code, message, details),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


async def _api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return json_error(
        exc.status_code, exc.code, exc.message, headers=exc.headers, details=exc.details
    )


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(err.get("type") == "json_invalid" for err in errors):
        return json_error(400, "malformed_json", "the request body is not valid JSON")
    details = [
        {
            "field": ".".join(str(part) for part in err.get("loc", ()) if part != "body"),
            "message": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in errors
    ]
    return json_error(422, "validation_error", "the request is not valid", details=details)


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return json_error(exc.status_code, code, message, headers=dict(exc.headers or {}))


def _probe_routes(service: ServiceName, settings: Settings) -> APIRouter:
    """``/metrics``; the health probes come from ``agora.health`` (see ``install_health``)."""
    router = APIRouter(include_in_schema=False)

    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    router.add_api_route("/metrics", metrics, methods=["GET"])
    return router


def build_app(
    service: ServiceName,
    settings: Settings,
    *,
    routers: Sequence[APIRouter],
    lifespan: ServiceLifespan | None = None,
) -> FastAPI:
    @asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(
            settings.require_database_url(),
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
            command_timeout_s=settings.db_command_timeout_s,
            acquire_timeout_s=settings.db_acquire_timeout_s,
            application_name=f"agora-{service}",
        )
        await db.connect()
        redis = create_redis(
            settings.require_redis_url(),
            socket_timeout_s=settings.redis_socket_timeout_s,
            max_connections=settings.redis_max_connections,
        )
        app.state.db = db
        app.state.redis = redis
        try:
            async with (
                running_checks(app, service, settings, db, redis),
                lifespan(app) if lifespan else nullcontext(),
            ):
                log.info("service started", service=service, instance_id=settings.instance_id)
                yield
        finally:
            await db.close()
            await redis.aclose()
            log.info("service stopped", service=service)

    docs_prefix = f"/api/v1/{service}"
    app = FastAPI(
        title=f"Agora {service}",
        version=agora.__version__,
        lifespan=app_lifespan,
        docs_url=None if settings.is_production else f"{docs_prefix}/docs",
        redoc_url=None,
        openapi_url=None if settings.is_production else f"{docs_prefix}/openapi.json",
    )
    app.state.settings = settings
    app.state.service = service
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    install_health(app, service, settings)
    app.include_router(_probe_routes(service, settings))
    for router in routers:
        app.include_router(router)
    app.add_middleware(RequestContextMiddleware, service=service)
    return app
