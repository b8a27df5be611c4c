"""Per-request context carried in contextvars, so every log line in a request can name it."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("agora_request_id", default=None)
user_id_var: ContextVar[str | None] = ContextVar("agora_user_id", default=None)


def current_request_id() -> str | None:
    return request_id_var.get()


def bind_user(user_id: str) -> None:
    user_id_var.set(user_id)
