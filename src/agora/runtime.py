"""The composition root: one typed, frozen object per process holding everything a request may
use, built once in the lifespan from the settings (``agora.app``).

Middleware get their parts through their constructors (the stack is built from a
``Runtime``); routes get them through typed dependencies that read ``app.runtime``. Nothing is
looked up by name on ``app.state``: a missing part is a type error or a loud ``RuntimeError``,
never a silent ``None`` that makes every caller anonymous.

``Runtime[P]`` is generic in ``P``, the frozen dataclass of what only one service has (its
domain service, key store, hub...), so this module knows nothing of the services.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import FastAPI
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp

from agora.cache.prefetch import Lookahead
from agora.config import ServiceName, Settings
from agora.db import Database
from agora.fastpath import Shortcut
from agora.flags import FaultSwitch, FeatureFlags
from agora.health.monitor import HealthMonitor
from agora.lifecycle import Lifecycle
from agora.ratelimit.limiter import RateLimiter
from agora.redis.access import RedisAccess
from agora.resilience.registry import Breakers
from agora.security.revocation import DeletedUsers, RevokedSessions
from agora.security.tokens import TokenVerifier

P = TypeVar("P")


@dataclass(frozen=True, slots=True, kw_only=True)
class Infrastructure:
    """What every service has, built by ``agora.app`` before the service's own parts."""

    service: ServiceName
    settings: Settings
    db: Database
    redis: RedisAccess
    breakers: Breakers
    limiter: RateLimiter
    deleted_users: DeletedUsers
    revoked_sessions: RevokedSessions
    lifecycle: Lifecycle
    health: HealthMonitor
    flags: FeatureFlags
    faults: FaultSwitch


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceParts(Generic[P]):
    """What a service's own start-up hook yields: its token verifier, its own parts and, if
    it knows before routing which cache entry a request reads, the lookahead that lets the
    rate limiter fetch it in its own round trip; a shortcut that answers what it can
    before FastAPI's routing (``agora.fastpath``); and what else must end when a signing
    key is revoked (``on_key_revoked(kid)``, after the verifier forgot it)."""

    verifier: TokenVerifier
    parts: P
    lookahead: Lookahead | None = None
    shortcut: Shortcut | None = None
    on_key_revoked: Callable[[str], None] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Runtime(Generic[P]):
    infra: Infrastructure
    verifier: TokenVerifier
    parts: P
    lookahead: Lookahead | None = None
    shortcut: Shortcut | None = None


class ServiceApp(FastAPI, Generic[P]):
    """A FastAPI app that knows its runtime once the lifespan has built it."""

    def __init__(self, *, lifecycle: Lifecycle, health: HealthMonitor, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Built with the app, not in the lifespan: the server's drain and the probes need
        # them before start-up completes and after shutdown begins.
        self.lifecycle = lifecycle
        self.health = health
        self._runtime: Runtime[P] | None = None

    @property
    def runtime(self) -> Runtime[P]:
        if self._runtime is None:
            raise RuntimeError("the app has not started: its lifespan has not run")
        return self._runtime

    def install_runtime(self, runtime: Runtime[P]) -> None:
        self._runtime = runtime

    def build_middleware_stack(self) -> ASGIApp:
        """Our middleware outermost, FastAPI's layers inside it, without Starlette's
        ``ServerErrorMiddleware``.

        FastAPI puts three layers of its own outside every user middleware (the last-resort
        500, exception telemetry, a body limit), so each request, a shortcut's too, crossed
        them twice. Ours do their work already: ``RequestContextMiddleware`` is the
        last-resort handler (the contract's JSON 500, logged, counted), so the
        ``ServerErrorMiddleware`` outside it could only ever see a failure of the two layers
        above it (admission, security headers), which uvicorn answers with the same plain 500.
        The telemetry and body-limit layers (idle here: telemetry is off, no body limit is
        set on the app) stay, inside ours, for the routes."""
        ours, self.user_middleware = self.user_middleware, []
        try:
            inner = super().build_middleware_stack()
        finally:
            self.user_middleware = ours
        if isinstance(inner, ServerErrorMiddleware):
            inner = inner.app
        for cls, args, kwargs in reversed(ours):
            inner = cls(inner, *args, **kwargs)
        return inner


def runtime_of(connection: HTTPConnection) -> Runtime[Any]:
    """The runtime of the app serving ``connection`` (a request or a WebSocket)."""
    app = connection.app
    if not isinstance(app, ServiceApp):
        raise TypeError(f"{type(app).__name__} is not an Agora service app")
    runtime: Runtime[Any] = app.runtime
    return runtime


def parts_of(connection: HTTPConnection, kind: type[P]) -> P:
    """The serving service's own parts, checked to be of ``kind``."""
    parts = runtime_of(connection).parts
    if not isinstance(parts, kind):
        raise TypeError(f"this app's parts are {type(parts).__name__}, not {kind.__name__}")
    return parts
