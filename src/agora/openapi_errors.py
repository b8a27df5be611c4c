"""The error contract in the OpenAPI description, computed for every route in one place.

A generated client trusts the description: a status it does not list is mis-handled (retried
when it must not be, or not retried when it should), a constraint it does not state becomes a
422 the client could have avoided. So each operation lists every status it can answer with
the one error body every service sends (``agora.errors``):

- what the route itself raises, declared on the route: ``responses=error_responses(404)``;
- what the middleware and FastAPI answer, which applies to many routes alike, added here by
  ``describe_errors`` from what the route is: every routed request can meet the admission
  bound, the drain, a dependency outage (503), the deadline (504), the rate limiter (429), the
  identity step's ``ambiguous_credentials`` (400), and the gateway's own answers (408, 502);
  a route that needs an access token adds 401 and the bearer security scheme; one that
  takes a body adds 400 ``malformed_json``, 413, 415 and 422; one that takes parameters, 422.

``tests/contract/`` drives every operation with requests generated from this description and
fails on any status or body it does not list, so a new middleware answer cannot go unlisted.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from agora.observability.route_templates import effective_routes
from agora.security.dependencies import require_principal


class FieldError(BaseModel):
    field: str = Field(description="dotted location of the invalid input, e.g. `query.limit`")
    message: str
    type: str = Field(description="pydantic's error type, e.g. `string_too_long`")


class ErrorDetail(BaseModel):
    # Further machine-readable fields may be added to an error (a contract extension, never
    # a removal): a client must ignore what it does not know.
    model_config = ConfigDict(extra="allow")

    code: str = Field(description="stable, machine-readable", examples=["not_found"])
    message: str = Field(description="for people; may change")
    request_id: str | None = Field(default=None, description="the X-Request-ID of the request")
    details: list[FieldError] | None = Field(
        default=None, description="422 `validation_error`: one entry per invalid input"
    )
    retry_after_s: int | None = Field(default=None, description="429: seconds to wait")
    backoff_s: float | None = Field(
        default=None, description="429 `rate_limited`: a suggested client backoff"
    )


class ErrorResponse(BaseModel):
    error: ErrorDetail


_DESCRIPTIONS = {
    400: "Bad request: `ambiguous_credentials` (more than one bearer token)",
    401: "No valid access token (`unauthenticated`, `invalid_token`, `session_ended`)",
    403: "Forbidden (`forbidden`)",
    404: "Not found (`not_found`)",
    408: "The gateway did not receive the whole request in time (`request_timeout`)",
    409: "Conflict (`conflict`)",
    413: "Request body larger than the service's limit (`payload_too_large`)",
    415: "The body is not `application/json` (`unsupported_media_type`)",
    422: "A body field or a parameter is invalid (`validation_error`, with `details`)",
    429: "Rate limited (`rate_limited`); see `Retry-After` and `RateLimit`",
    502: "The gateway could not complete the request (`gateway_error`); safe to retry an "
    "idempotent request",
    503: "Overloaded (`overloaded`), shutting down or a dependency is unavailable "
    "(`unavailable`); retry after `Retry-After`",
    504: "The request passed the service's deadline (`timeout`)",
}

_RETRY_AFTER = {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    429: {
        "Retry-After": _RETRY_AFTER,
        "RateLimit": {
            "description": "IETF draft: remaining and reset",
            "schema": {"type": "string"},
        },
        "RateLimit-Policy": {"description": "IETF draft: the limit", "schema": {"type": "string"}},
    },
    503: {"Retry-After": _RETRY_AFTER},
}

# What every routed request can meet, whatever the route (middleware and gateway).
ROUTED = frozenset({400, 408, 429, 502, 503, 504})
# Paths the identity step, the limiter and admission control leave alone still meet the drain's
# 503, the deadline and the gateway.
UNGUARDED = frozenset({408, 502, 503, 504})
WITH_BODY = frozenset({400, 413, 415, 422})
WITH_PARAMETERS = frozenset({422})
AUTHENTICATED = frozenset({401})

API_CONVENTIONS = """\
**Errors.** Every error is `{"error": {"code", "message", "request_id"}}` with a stable `code`;
each operation lists the statuses it can answer. A method a path does not serve is answered
405 `method_not_allowed` with an `Allow` header naming every method it does serve; an unknown
path, 404 `not_found`.

**Retrying.** 429 and 503 carry `Retry-After` (seconds): wait that long. 502, 503 and 504 may be
retried for idempotent requests (GET, PUT, DELETE). Other 4xx answers will not change on a retry.

**Strings.** Every string is valid Unicode (no lone surrogates) without the NUL character;
plain-text fields refuse control characters other than newline and tab, and have markup removed
(a field's schema states the subset of input that is always accepted)."""

BEARER_SCHEME = "bearer"
_ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


def error_responses(
    *statuses: int, descriptions: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for the statuses a route raises itself (the shared ones are added by
    ``describe_errors``); ``descriptions`` names the route's own codes for a status."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        text = (descriptions or {}).get(status, _DESCRIPTIONS[status])
        entry: dict[str, Any] = {"model": ErrorResponse, "description": text}
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        documented[status] = entry
    return documented


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any] | None]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def shared_statuses(
    route: APIRoute, path: str, *, unguarded_paths: Collection[str]
) -> frozenset[int]:
    """The statuses ``route`` (at ``path``) can answer that it does not raise itself."""
    dependant = route.dependant
    statuses = set(UNGUARDED if path in unguarded_paths else ROUTED)
    if require_principal in _calls(dependant):
        statuses |= AUTHENTICATED
    if route.body_field is not None:
        statuses |= WITH_BODY
    if dependant.path_params or dependant.query_params or dependant.header_params:
        statuses |= WITH_PARAMETERS
    return frozenset(statuses)


def _add_components(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in error_schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schemas.setdefault("ErrorResponse", error_schema)
    # FastAPI's own 422 body, which the services never send: every 422 is ours.
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    components.setdefault("securitySchemes", {})[BEARER_SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "an access token from `POST /api/v1/auth/login` (RS256, 15 minutes)",
    }


def _add_statuses(operation: dict[str, Any], statuses: frozenset[int]) -> None:
    responses = operation["responses"]
    if responses.get("422", {}).get("description") == "Validation Error":  # FastAPI's
        del responses["422"]
    for status in statuses:
        entry = responses.setdefault(str(status), {"description": _DESCRIPTIONS[status]})
        entry["content"] = {"application/json": {"schema": _ERROR_REF}}
        if status in _HEADERS:
            entry.setdefault("headers", _HEADERS[status])
    if statuses >= AUTHENTICATED:
        operation["security"] = [{BEARER_SCHEME: []}]


def _complete(schema: dict[str, Any], app: FastAPI, unguarded_paths: Collection[str]) -> None:
    _add_components(schema)
    for path, route in effective_routes(app.routes):
        if not isinstance(route, APIRoute) or path not in schema["paths"]:
            continue
        statuses = shared_statuses(route, path, unguarded_paths=unguarded_paths)
        for method in route.methods or ():
            operation = schema["paths"][path].get(method.lower())
            if operation is not None:
                _add_statuses(operation, statuses)


def describe_errors(app: FastAPI, *, unguarded_paths: Collection[str]) -> None:
    """Make ``app.openapi()`` list every route's shared statuses (computed once, cached by
    FastAPI like its own schema). ``unguarded_paths``: paths the identity step, the limiter
    and admission control exempt."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            _complete(schema, app, unguarded_paths)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension point
