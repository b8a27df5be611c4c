"""API errors with a stable machine-readable ``code``, and the contract's JSON error body.

Every failure a client can see goes through here, so the body is always
``{"error": {"code", "message", "request_id"}}`` and never carries a stack trace or SQL.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import Send

from agora.observability.context import current_request_id
from agora.observability.metrics import ERRORS


class ApiError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.headers = headers or {}
        self.details = details


class NotFound(ApiError):
    status_code = 404
    code = "not_found"


class Conflict(ApiError):
    status_code = 409
    code = "conflict"


class Unauthenticated(ApiError):
    status_code = 401
    code = "unauthenticated"

    def __init__(self, message: str = "authentication required", **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kwargs)


class Forbidden(ApiError):
    status_code = 403
    code = "forbidden"


class Unprocessable(ApiError):
    status_code = 422
    code = "validation_error"


class ServiceUnavailable(ApiError):
    status_code = 503
    code = "unavailable"


def error_body(
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    *,
    extra: dict[str, Any] | None = None,
) -> bytes:
    """``extra``: further machine-readable fields of this error (e.g. ``retry_after_s``)."""
    ERRORS.labels(code).inc()
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "request_id": current_request_id(),
    }
    if details:
        error["details"] = details
    if extra:
        error.update(extra)
    return orjson.dumps({"error": error})


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    *,
    headers: tuple[tuple[bytes, bytes], ...] = (),
    extra: dict[str, Any] | None = None,
) -> None:
    """The contract's error as a raw ASGI response, for the middleware that answers before
    (or instead of) the app: limits, the rate limiter, the drain, the last-resort handler."""
    body = error_body(code, message, extra=extra)
    start_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": start_headers})
    await send({"type": "http.response.body", "body": body})


def websocket_error_frame(code: str, message: str, **fields: int) -> str:
    """The ``{"type": "error", ...}`` event of the WebSocket contract."""
    return orjson.dumps({"type": "error", "code": code, "message": message, **fields}).decode()
