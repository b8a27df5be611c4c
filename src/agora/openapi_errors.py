"""The error contract in the OpenAPI description: ``responses=error_responses(401, 404)`` on a
route documents each status it can answer with the one error body every service sends
(``agora.errors``), so a generated client can rely on it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="stable, machine-readable", examples=["not_found"])
    message: str = Field(description="for people; may change")
    request_id: str | None = Field(default=None, description="the X-Request-ID of the request")


class ErrorResponse(BaseModel):
    error: ErrorDetail


_DESCRIPTIONS = {
    400: "Bad request (`ambiguous_credentials`, …)",
    401: "No valid access token (`unauthenticated`, `invalid_token`, `session_ended`)",
    403: "Forbidden (`invalid_credentials`, `csrf_failed`, `forbidden`)",
    404: "Not found (`not_found`)",
    413: "Request body too large (`payload_too_large`)",
    422: "The body or a parameter is invalid (`validation_error`)",
    429: "Rate limited (`rate_limited`, `login_backoff`); see `Retry-After`",
    503: "A dependency is unavailable (`unavailable`); see `Retry-After`",
}

_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status with the error schema (and ``Retry-After`` on
    429/503). Every route can also answer 413, 422 (when it takes input), 429 and 503."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorResponse, "description": _DESCRIPTIONS[status]}
        if status in (429, 503):
            entry["headers"] = _RETRY_AFTER
        documented[status] = entry
    return documented
