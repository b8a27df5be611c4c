"""Per-request context carried in contextvars, so every log line in a request can name it."""

from __future__ import annotations

from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any

from agora.observability.activity import record_active_user

request_id_var: ContextVar[str | None] = ContextVar("agora_request_id", default=None)
user_id_var: ContextVar[str | None] = ContextVar("agora_user_id", default=None)
# The ASGI scope of the request being served: the router writes the matched route into it,
# so log lines can name the route template without the middleware knowing it yet.
request_scope_var: ContextVar[MutableMapping[str, Any] | None] = ContextVar(
    "agora_request_scope", default=None
)


def current_request_id() -> str | None:
    return request_id_var.get()


def bind_user(user_id: str) -> None:
    """The caller is known: name them in this request's log lines, and count them as active."""
    user_id_var.set(user_id)
    record_active_user(user_id)
