"""The outermost pure-ASGI middleware: request id, access log, HTTP metrics, last-resort 500.

Pure ASGI (not ``BaseHTTPMiddleware``) keeps contextvars intact and costs microseconds.
"""

from __future__ import annotations

import random
import re
import time
from typing import Any

import asyncpg
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agora.errors import error_body
from agora.observability.context import request_id_var, user_id_var
from agora.observability.logging import get_logger
from agora.observability.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS

log = get_logger("agora.access")

# A client-supplied request id is echoed only when it looks like one (no header injection,
# no unbounded log fields).
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_UNTRACKED_PATHS = frozenset({"/metrics", "/healthz", "/healthz/live", "/healthz/ready", "/readyz"})
# A lost database or Redis connection is the server's trouble, and temporary: 503, not 500.
_DEPENDENCY_ERRORS = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    ConnectionError,
    TimeoutError,
    RedisConnectionError,
    RedisTimeoutError,
)


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path: object = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def _incoming_request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _REQUEST_ID_RE.match(candidate):
                return candidate
            break
    # Request ids need to be unique, not unpredictable: no system call for randomness.
    return f"{random.getrandbits(128):032x}"  # nosec B311 # an id, not a secret


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope)
        request_token = request_id_var.set(request_id)
        user_token = user_id_var.set(None)
        header = (b"x-request-id", request_id.encode())
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            elif message["type"] == "websocket.accept":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if scope["type"] != "http":
                log.exception("unhandled error in websocket handler")
                return
            status, code, message = _classify(exc)
            if status == 500:
                log.exception("unhandled error", error_type=type(exc).__name__)
            else:
                log.warning("dependency unavailable", error_type=type(exc).__name__)
            if not response_started:
                await _send_error(send_with_id, status, code, message)
        finally:
            if scope["type"] == "http":
                self._observe(scope, status, time.perf_counter() - started)
            request_id_var.reset(request_token)
            user_id_var.reset(user_token)

    def _observe(self, scope: Scope, status: int, duration_s: float) -> None:
        path = scope.get("path", "")
        if path in _UNTRACKED_PATHS:
            return
        route = route_template(scope)
        method = scope.get("method", "GET")
        HTTP_REQUESTS.labels(self.service, method, route, str(status)).inc()
        HTTP_REQUEST_DURATION.labels(self.service, method, route).observe(duration_s)
        log.info(
            "request",
            **{
                "http.request.method": method,
                "url.path": path,
                "http.route": route,
                "http.response.status_code": status,
                "event.duration": int(duration_s * 1e9),
            },
        )


def _classify(exc: Exception) -> tuple[int, str, str]:
    if isinstance(exc, _DEPENDENCY_ERRORS):
        return 503, "unavailable", "a dependency is unavailable; try again shortly"
    return 500, "internal_error", "internal server error"


async def _send_error(send: Any, status: int, code: str, message: str) -> None:
    body = error_body(code, message)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 503:
        headers.append((b"retry-after", b"5"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
