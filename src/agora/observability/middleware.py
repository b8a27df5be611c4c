"""The outermost pure-ASGI middleware: request id, server span, access log, HTTP metrics,
last-resort 500.

Pure ASGI (not ``BaseHTTPMiddleware``) keeps contextvars intact and costs microseconds. The one
server span of a request is opened here (named by route template once routing has run), so
the request is instrumented exactly once.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg
from opentelemetry import trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, StatusCode
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agora.errors import send_error
from agora.observability import tracing
from agora.observability.context import request_id_var, request_scope_var, user_id_var
from agora.observability.exposition import UNTRACKED_PATHS
from agora.observability.logging import get_logger
from agora.observability.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS
from agora.observability.route_templates import route_template

log = get_logger("agora.access")

# A client-supplied request id is echoed only when it looks like one (no header injection,
# no unbounded log fields).
# Plain ints, not HTTPStatus members: read on every request.
_CLIENT_ERROR, _SERVER_ERROR, _UNAVAILABLE = 400, 500, 503
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# A lost database or Redis connection is the server's trouble, and temporary: 503, not 500.
_DEPENDENCY_ERRORS = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    ConnectionError,
    TimeoutError,
    RedisConnectionError,
    RedisTimeoutError,
)


def _incoming_request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _REQUEST_ID_RE.match(candidate):
                return candidate
            break
    # Request ids need to be unique, not unpredictable: no system call for randomness.
    return f"{random.getrandbits(128):032x}"  # nosec B311 # an id, not a secret


class _HeaderGetter(Getter[Scope]):
    """Reads ``traceparent``/``tracestate``/``baggage`` from raw ASGI headers."""

    def get(self, carrier: Scope, key: str) -> list[str] | None:
        wanted = key.lower().encode()
        found = [v.decode("latin-1") for k, v in carrier.get("headers", ()) if k == wanted]
        return found or None

    def keys(self, carrier: Scope) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier.get("headers", ())]


_GETTER = _HeaderGetter()


@dataclass(frozen=True)
class AccessLogPolicy:
    """Which successful requests get an access line: all, except on hot routes, where a
    ``sample_ratio`` share does. Errors (4xx/5xx), slow requests and requests whose trace is
    sampled are always logged, so a trace found in Jaeger always has its access line."""

    sample_ratio: float = 1.0
    hot_routes: frozenset[str] = frozenset()
    slow_s: float = 0.5

    @classmethod
    def create(cls, ratio: float, hot_routes: Iterable[str], slow_ms: int) -> AccessLogPolicy:
        return cls(ratio, frozenset(hot_routes), slow_ms / 1000)

    def should_log(self, route: str, status: int, duration_s: float, sampled: bool) -> bool:
        if (
            status >= _CLIENT_ERROR
            or duration_s >= self.slow_s
            or sampled
            or route not in self.hot_routes
        ):
            return True
        return random.random() < self.sample_ratio  # noqa: S311  # nosec B311 # log sampling


# Label sets remembered per process: templates and statuses are few, but the method is the
# client's word, so the table is bounded and anything past it takes ``labels()`` each time.
_MAX_BOUND_SERIES = 1024


class RequestContextMiddleware:
    def __init__(
        self, app: ASGIApp, *, service: str, access_log: AccessLogPolicy | None = None
    ) -> None:
        self.app = app
        self.service = service
        self.access_log = access_log or AccessLogPolicy()
        # (method, route, status) -> the two metric children: ``labels()`` takes a lock and
        # builds a key on every call; a dictionary hit costs a fraction of that.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def _children(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        key = (method, route, status)
        children = self._series.get(key)
        if children is None:
            children = (
                HTTP_REQUESTS.labels(self.service, method, route, str(status)),
                HTTP_REQUEST_DURATION.labels(self.service, method, route),
            )
            if len(self._series) < _MAX_BOUND_SERIES:
                self._series[key] = children
        return children

    # One frame per request on purpose: this is the request path issue 12 measures, and a split
    # costs a call per step; its branches are the protocol's (http/websocket, span on or off).
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: C901, PLR0915
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope)
        request_token = request_id_var.set(request_id)
        user_token = user_id_var.set(None)
        scope_token = request_scope_var.set(scope)
        tracked = scope.get("path", "") not in UNTRACKED_PATHS
        tracer = tracing.tracer() if tracked else None
        span: trace.Span | None = None
        span_token = None
        if tracer is not None:
            parent = tracing.extract_with(scope, _GETTER)
            span = tracer.start_span(
                scope.get("method", "WS") if scope["type"] == "http" else "WS",
                context=parent,
                kind=SpanKind.SERVER,
                attributes={
                    "http.request.method": scope.get("method", "GET"),
                    "url.path": scope.get("path", ""),
                    "http.request.id": request_id,
                },
            )
            span_token = tracing.attach(span, parent)
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
                # The connect span is the handshake; messages and deliveries link to it.
                _end_span(span, scope, 101)
            elif message["type"] == "websocket.close" and span is not None:
                _end_span(span, scope, 403)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if scope["type"] != "http":
                log.exception("unhandled error in websocket handler")
                return
            status, code, message = _classify(exc)
            if status == _SERVER_ERROR:
                log.exception("unhandled error", error_type=type(exc).__name__)
            else:
                log.warning("dependency unavailable", error_type=type(exc).__name__)
            if not response_started:
                await _send_error(send_with_id, status, code, message)
        finally:
            if scope["type"] == "http" and tracked:
                self._observe(scope, status, time.perf_counter() - started, span)
            _end_span(span, scope, status)
            if span_token is not None:
                tracing.detach(span_token)
            request_scope_var.reset(scope_token)
            request_id_var.reset(request_token)
            user_id_var.reset(user_token)

    def _observe(
        self, scope: Scope, status: int, duration_s: float, span: trace.Span | None
    ) -> None:
        route = route_template(scope)
        method = scope.get("method", "GET")
        requests, duration = self._children(method, route, status)
        requests.inc()
        duration.observe(duration_s)
        sampled = span is not None and span.get_span_context().trace_flags.sampled
        if not self.access_log.should_log(route, status, duration_s, sampled):
            return
        log.info(
            "request",
            **{
                "url.path": scope.get("path", ""),
                "http.response.status_code": status,
                "event.duration": int(duration_s * 1e9),
            },
        )


def _end_span(span: trace.Span | None, scope: Scope, status: int) -> None:
    """Name the span by route template and close it (once: later calls do nothing)."""
    if span is None or not span.is_recording():
        return
    route = route_template(scope)
    method = scope.get("method", "WS") if scope["type"] == "http" else "WS"
    span.update_name(f"{method} {route}")
    span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    user_id = user_id_var.get()
    if user_id is not None:
        span.set_attribute("enduser.id", user_id)
    if status >= _SERVER_ERROR:
        span.set_status(StatusCode.ERROR)
    span.end()


def _classify(exc: Exception) -> tuple[int, str, str]:
    if isinstance(exc, _DEPENDENCY_ERRORS):
        return _UNAVAILABLE, "unavailable", "a dependency is unavailable; try again shortly"
    return _SERVER_ERROR, "internal_error", "internal server error"


async def _send_error(send: Any, status: int, code: str, message: str) -> None:
    headers = ((b"retry-after", b"5"),) if status == _UNAVAILABLE else ()
    await send_error(send, status, code, message, headers=headers)
