"""A cache lookup sent ahead, in the rate limiter's round trip.

A cached authenticated read would otherwise make two Redis round trips: the limiter's
pipeline (rate-limit script + deletion mark), then the cache's lookup script once the route
runs. A service that knows, before routing, which entry a request will read (posts: ``GET
/api/v1/posts/{id}`` reads ``post:{id}:{viewer}``) offers a ``Lookahead``; the limiter adds
the lookup script to its pipeline and leaves the reply here, for this request only (a
context variable: the route runs in the limiter's task), and ``CacheService.get_or_load``
takes it instead of asking Redis again.

Correct because the lookup is the same script with the same key: the entry is validated
against its stamps in the same call that returns it, only a little earlier. The Redis time it
returns (the store guard's "before the load") is then earlier too, which only makes the guard
stricter. A reply that is an error (a NOSCRIPT after a Redis restart) is not offered: the
route's own lookup loads the script.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from starlette.types import Scope


@dataclass(frozen=True, slots=True)
class Lookahead:
    """``entry_for(scope, verified user id)``: the full entry key the request will look up,
    or None; ``script_sha``: the cache's lookup script."""

    entry_for: Callable[[Scope, str], str | None]
    script_sha: str


_offered: ContextVar[tuple[str, list[Any]] | None] = ContextVar("agora_cache_offered", default=None)


def offer(entry: str, reply: list[Any]) -> Token[tuple[str, list[Any]] | None]:
    return _offered.set((entry, reply))


def withdraw(token: Token[tuple[str, list[Any]] | None]) -> None:
    _offered.reset(token)


def peek(entry: str) -> list[Any] | None:
    """The lookup reply offered for ``entry`` in this request, left in place."""
    offered = _offered.get()
    return offered[1] if offered is not None and offered[0] == entry else None


def take(entry: str) -> list[Any] | None:
    """The lookup reply offered for ``entry`` in this request, once."""
    offered = _offered.get()
    if offered is None or offered[0] != entry:
        return None
    _offered.set(None)
    return offered[1]
