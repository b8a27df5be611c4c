"""Builds one service's ASGI app: error contract, middleware stack, lifespan, probes, metrics.

This is the wiring, in one place. The lifespan builds the process's ``Runtime`` (the
composition root, ``agora.runtime``) from the settings: the shared infrastructure here, then
the service's own parts from its start hook; then the middleware stack, declared once in
``middleware_stack``, is built from it, each middleware getting its parts through its
constructor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from http import HTTPStatus
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware

import agora
from agora.config import ServiceName, Settings
from agora.db.factory import database_from_settings
from agora.errors import ApiError, error_body
from agora.fastpath import ShortcutMiddleware
from agora.flags import FaultSwitch, FeatureFlags
from agora.health import health_router, new_monitor, running_checks
from agora.lifecycle import AnswerCutOffRequests
from agora.observability.exposition import render_metrics
from agora.observability.logging import get_logger
from agora.observability.middleware import AccessLogPolicy, RequestContextMiddleware
from agora.observability.route_templates import allowed_methods
from agora.observability.runtime import observability
from agora.openapi_errors import API_CONVENTIONS, describe_errors
from agora.ratelimit.middleware import EXEMPT_PATHS, RateLimitMiddleware, build_rate_limiter
from agora.redis.client import redis_access
from agora.resilience.admin import admin_routes
from agora.resilience.admission import AdmissionControl
from agora.resilience.registry import Breakers
from agora.runtime import Infrastructure, Runtime, ServiceApp, ServiceParts
from agora.security.docs import docs_available, mount_docs
from agora.security.headers import SecurityHeadersMiddleware
from agora.security.identity import IdentityMiddleware
from agora.security.key_revocation import following_key_revocations
from agora.security.limits import RequestLimitsMiddleware, is_json_media_type
from agora.security.middleware import cors, deleted_users_store, revoked_sessions_store
from agora.security.tokens import StaticKeyResolver, TokenVerifier

log = get_logger(__name__)

P = TypeVar("P")
# What only one service starts: given the shared infrastructure, its verifier and its parts,
# for as long as the app runs.
ServiceStart = Callable[[Infrastructure], AbstractAsyncContextManager[ServiceParts[P]]]

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


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(err.get("type") == "json_invalid" for err in errors):
        return json_error(400, "malformed_json", "the request body is not valid JSON")
    if _body_not_json(request, errors):
        return json_error(
            415, "unsupported_media_type", "the request body must be application/json"
        )
    details = [
        {
            "field": ".".join(str(part) for part in err.get("loc", ()) if part != "body"),
            "message": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in errors
    ]
    return json_error(422, "validation_error", "the request is not valid", details=details)


def _body_not_json(request: Request, errors: Sequence[Any]) -> bool:
    """A body was sent, but not as JSON: FastAPI hands the raw bytes to the model, which
    refuses them as "not an object" - a 422 that would send a client looking for a wrong
    field, when the fix is the Content-Type."""
    content_type = request.headers.get("content-type")
    headers = request.headers
    if (
        content_type is None
        and headers.get("content-length", "0") == "0"
        and ("transfer-encoding" not in headers)
    ):
        return False  # no body at all: the model's "field required" says it
    if is_json_media_type((content_type or "").encode("latin-1")):
        return False
    return any(tuple(err.get("loc", ())) == ("body",) for err in errors)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    headers = dict(exc.headers or {})
    if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        allowed = allowed_methods(request.scope)
        if allowed:
            headers["Allow"] = ", ".join(sorted(allowed))
    return json_error(exc.status_code, code, message, headers=headers)


def _metrics_route() -> APIRouter:
    """``/metrics`` on the service's own port; the probes come from ``agora.health``."""
    router = APIRouter(include_in_schema=False)

    async def metrics() -> Response:
        body, content_type = render_metrics()
        return Response(body, media_type=content_type)

    router.add_api_route("/metrics", metrics, methods=["GET"])
    return router


@asynccontextmanager
async def _trusting_no_keys(infra: Infrastructure) -> AsyncIterator[ServiceParts[Any]]:
    settings = infra.settings
    verifier = TokenVerifier(
        StaticKeyResolver({}), issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    yield ServiceParts(verifier=verifier, parts=None)


def middleware_stack(
    runtime: Runtime[Any], *, docs_prefix: str | None, docs_csp: str | None
) -> list[Middleware]:
    """Every service's middleware, outermost first: the one place that says their order.

    - admission control outermost: past the instance's bound a request is refused before
      any work, from prepared headers (the security headers included), and counted;
    - security headers next, so every other response (the last-resort 500 too) gets them;
    - request context (request id, span, access line, metrics, last-resort 500) next, so
      every answer below it carries a request id and is logged and counted;
    - identity before the limiter, which bills the verified user (and sends the cache
      lookup the route will make in the same round trip);
    - the limiter before CORS and the body limits: a flood is refused before any work;
    - the drain's 503 right inside the request context: a request the drain cuts off is
      answered 503 with Retry-After wherever it waits (a key fetch in the identity step, the
      limiter's Redis call, a route), never uvicorn's bare 500;
    - the service's shortcut right after the limiter, before CORS and the body limits: it
      takes only requests those two would pass through untouched (no ``Origin``, no body),
      so it skips their work (``agora.fastpath``);
    - FastAPI's own layers inside all of these (``ServiceApp.build_middleware_stack``).
    """
    infra = runtime.infra
    settings = infra.settings
    access_log = AccessLogPolicy.create(
        settings.effective_log_sample_ratio, settings.log_hot_routes, settings.log_slow_request_ms
    )
    stack = [
        Middleware(
            AdmissionControl,
            service=infra.service,
            limit=settings.max_in_flight,
            queue=settings.admission_queue,
            queue_timeout_s=settings.admission_queue_timeout_s,
            exempt_paths=EXEMPT_PATHS,
        ),
        Middleware(
            SecurityHeadersMiddleware,
            no_store=infra.service == "auth",
            docs_prefix=docs_prefix,
            docs_csp=docs_csp,
        ),
        Middleware(RequestContextMiddleware, service=infra.service, access_log=access_log),
        Middleware(AnswerCutOffRequests, lifecycle=infra.lifecycle),
        Middleware(IdentityMiddleware, verifier=runtime.verifier, exempt_paths=EXEMPT_PATHS),
    ]
    if settings.ratelimit_enabled:
        stack.append(
            Middleware(
                RateLimitMiddleware,
                settings=settings,
                limiter=infra.limiter,
                deleted_users=infra.deleted_users,
                revoked_sessions=infra.revoked_sessions,
                lookahead=runtime.lookahead,
            )
        )
    if runtime.shortcut is not None:
        stack.append(Middleware(ShortcutMiddleware, shortcut=runtime.shortcut))
    if settings.cors_origins:
        stack.append(cors(settings))
    stack.append(
        Middleware(
            RequestLimitsMiddleware,
            max_body_bytes=settings.max_body_bytes,
            max_json_depth=settings.max_json_depth,
            timeout_s=settings.request_timeout_s,
        )
    )
    return stack


def build_app(
    service: ServiceName,
    settings: Settings,
    *,
    routers: Sequence[APIRouter],
    start: ServiceStart[P] | None = None,
    description: str = "",
) -> ServiceApp[P]:
    """``start``: what only this service starts. Without it (an app of shared parts only,
    as tests build) the app trusts no signing key: every bearer token is refused.
    ``description``: the OpenAPI description's introduction (what the paths cannot say)."""
    health = new_monitor(service, settings)
    breakers = Breakers(settings)
    docs_prefix = f"/api/v1/{service}"
    docs_csp: str | None = None

    @asynccontextmanager
    async def lifespan(_: object) -> AsyncIterator[None]:
        # Flags first: the fault switch sits at the PostgreSQL and Redis call boundary.
        flags = FeatureFlags.from_file(
            settings.flags_file, name=f"agora-{service}", reload_s=settings.flags_reload_s
        )
        faults = FaultSwitch(
            flags,
            instance_id=settings.instance_id,
            service=service,
            allowed=settings.effective_fault_injection,
        )
        # The one way to Redis: key namespace, timeouts, breaker, each use's policy.
        redis = redis_access(settings, breakers.redis, faults)
        db = database_from_settings(
            settings,
            application_name=f"agora-{service}",
            breakers=breakers,
            redis=redis,
            faults=faults,
        )
        await db.connect()
        infra = Infrastructure(
            service=service,
            settings=settings,
            db=db,
            redis=redis,
            breakers=breakers,
            limiter=build_rate_limiter(settings, redis),
            deleted_users=deleted_users_store(redis, db, settings),
            revoked_sessions=revoked_sessions_store(redis, db, settings),
            lifecycle=health.lifecycle,
            health=health,
            flags=flags,
            faults=faults,
        )
        try:
            async with (
                flags.watching(),
                observability(app, service, settings, redis),
                running_checks(health, service, settings, db, redis.client),
                (start or _trusting_no_keys)(infra) as own,
                following_key_revocations(
                    redis, settings.key_events_channel, own.verifier, own.on_key_revoked
                ),
            ):
                runtime = Runtime(
                    infra=infra,
                    verifier=own.verifier,
                    parts=own.parts,
                    lookahead=own.lookahead,
                    shortcut=own.shortcut,
                )
                app.install_runtime(runtime)
                # Starlette built a stack for the lifespan call already; requests get this one.
                app.user_middleware = middleware_stack(
                    runtime,
                    docs_prefix=f"{docs_prefix}/docs" if docs_csp else None,
                    docs_csp=docs_csp,
                )
                app.middleware_stack = app.build_middleware_stack()
                log.info("service started", service=service, instance_id=settings.instance_id)
                yield
        finally:
            await db.close()
            await redis.aclose()
            flags.close()
            log.info("service stopped", service=service)

    app: ServiceApp[P] = ServiceApp(
        lifecycle=health.lifecycle,
        health=health,
        title=f"Agora {service}",
        description=f"{description}\n\n{API_CONVENTIONS}".strip(),
        version=agora.__version__,
        lifespan=lifespan,
        docs_url=None,  # served without a CDN by agora.security.docs (development only)
        redoc_url=None,
        openapi_url=None if settings.is_production else f"{docs_prefix}/openapi.json",
        # One server span per request, opened by RequestContextMiddleware: never twice.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.include_router(health_router(health))
    app.include_router(_metrics_route())
    app.include_router(admin_routes(settings, breakers))
    for router in routers:
        app.include_router(router)
    # Every operation's shared statuses (middleware, gateway) are computed, not hand-listed.
    describe_errors(app, unguarded_paths=EXEMPT_PATHS)
    if not settings.is_production and docs_available():
        docs_csp = mount_docs(app, prefix=docs_prefix, openapi_url=f"{docs_prefix}/openapi.json")
    return app
