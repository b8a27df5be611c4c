"""One process's lifecycle as the probes and the drain see it: when it started, whether it is
shutting down, and what must happen to long-lived connections before it stops.

The server (``agora.shutdown``) flips ``shutting_down`` from its signal handler, so readiness
answers 503 from the very first moment of a shutdown; services register drain hooks for
connections the HTTP server cannot finish on its own (WebSockets).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agora.errors import send_error
from agora.observability.logging import get_logger

log = get_logger(__name__)

DrainHook = Callable[[], Awaitable[None]]


class Lifecycle:
    def __init__(self) -> None:
        self.started_at = time.monotonic()
        self.shutting_down = False
        self.cut_off = 0  # requests the drain ended, answered 503 (AnswerCutOffRequests)
        self._drain_hooks: list[DrainHook] = []

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started_at

    def begin_shutdown(self) -> None:
        """Safe to call from a signal handler (it only sets a flag); idempotent."""
        self.shutting_down = True

    def on_drain(self, hook: DrainHook) -> None:
        self._drain_hooks.append(hook)

    async def drain(self, timeout_s: float) -> bool:
        """Run every drain hook at once; True when all finished within ``timeout_s``."""
        if not self._drain_hooks:
            return True
        tasks = [asyncio.ensure_future(hook()) for hook in self._drain_hooks]
        done, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        for task in done:
            if task.exception() is not None:
                log.error("drain hook failed", error=repr(task.exception()))
        return not pending


class AnswerCutOffRequests:
    """Pure ASGI: a request the drain has to cut off (uvicorn cancels it once
    ``AGORA_SHUTDOWN_TIMEOUT_S`` is over) gets the contract's 503 with ``Retry-After``, so
    the client knows it may retry elsewhere, instead of uvicorn's plain-text 500.

    It sits inside the request-context middleware, so the answer carries the request id and
    is logged and counted like any other.
    """

    def __init__(self, app: ASGIApp, *, lifecycle: Lifecycle) -> None:
        self.app = app
        self.lifecycle = lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except asyncio.CancelledError:
            if not self.lifecycle.shutting_down or started:
                raise
            # The cancellation is the server ending this request; answering it is the point.
            self.lifecycle.cut_off += 1
            await send_error(
                send,
                503,
                "unavailable",
                "the server is shutting down; retry the request",
                headers=((b"retry-after", b"1"), (b"connection", b"close")),
            )
