"""Graceful shutdown on SIGTERM/SIGINT: uvicorn's server with the drain a fleet needs.

uvicorn alone stops listening at once, closes WebSockets with a bare 1012 and waits for the
rest (unbounded unless ``timeout_graceful_shutdown`` is set; uvicorn #1344, PR #1140). Behind a
load balancer that loses requests: the balancer keeps sending to an instance that no longer
listens until its health check notices. So, in order:

1. readiness answers 503 from the moment the signal arrives (set in the signal handler);
2. the instance keeps serving for ``shutdown_delay_s`` (0 in development, 5 in production)
   while load balancers take it out of rotation;
3. it stops accepting connections, once those the kernel already queued are accepted;
4. WebSocket clients get ``{"type": "server.draining", "reconnect_after_ms": n}`` and a 1012
   close, so they reconnect elsewhere instead of seeing 1006 (bounded by ``WS_DRAIN_S``);
5. idle keep-alive connections are closed and in-flight requests finish, up to
   ``shutdown_timeout_s`` (then uvicorn cancels what is left, answered 503); a connection
   whose request has arrived but is not read yet is served, not closed
   (``agora.connection_drain``);
6. the lifespan closes the database pool and Redis; logs and traces are flushed.

A watchdog ends the process at ``HARD_LIMIT_S`` whatever hangs, within Kubernetes'
``terminationGracePeriodSeconds`` of 65 (docs/operations.md). Exit status: 0 after a clean
drain, 1 when requests had to be cut off.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import threading
import time
from types import FrameType

import uvicorn

from agora.connection_drain import ConnectionDrain, accept_queue_length
from agora.lifecycle import Lifecycle
from agora.observability.logging import get_logger

log = get_logger(__name__)

HARD_LIMIT_S = 60.0
WS_DRAIN_S = 5.0
# How long a connection accepted just before the listener closed may take to send its
# request (agora.connection_drain); capped by AGORA_SHUTDOWN_TIMEOUT_S.
FIRST_REQUEST_GRACE_S = 5.0
# How long the listener may stay open, after the pre-drain delay, for the event loop to accept
# connections already in the kernel's accept queue (closing it resets them).
ACCEPT_QUEUE_WAIT_S = 2.0
# What uvicorn's own wait gets once ours is over: only stragglers are left by then.
_UVICORN_GRACE_S = 1
UNCLEAN_EXIT_CODE = 1


class GracefulServer(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        *,
        lifecycle: Lifecycle,
        delay_s: float,
        drain_timeout_s: float,
    ) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self.delay_s = delay_s
        self.drain_timeout_s = drain_timeout_s
        self.drained_cleanly = True
        self.drain_seconds: float | None = None
        self._signalled_at: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._signalled_at is None:
            self._signalled_at = time.monotonic()
            self.lifecycle.begin_shutdown()
            _start_watchdog(HARD_LIMIT_S)
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        started = self._signalled_at or time.monotonic()
        self.lifecycle.begin_shutdown()  # also when stopped without a signal
        state = self.server_state
        log.info(
            "draining",
            delay_s=self.delay_s,
            connections=len(state.connections),
            in_flight=len(state.tasks),
        )
        await self._sleep_unless_forced(self.delay_s - (time.monotonic() - started))
        reset = await self._wait_for_accept_queue(min(ACCEPT_QUEUE_WAIT_S, self.drain_timeout_s))
        for server in self.servers:
            server.close()
        served_before = state.total_requests
        if not self.force_exit and not await self.lifecycle.drain(WS_DRAIN_S):
            log.warning("some WebSocket clients did not close in time", limit_s=WS_DRAIN_S)
        grace_s = min(FIRST_REQUEST_GRACE_S, self.drain_timeout_s)
        drain = ConnectionDrain(first_request_grace_s=grace_s)
        deadline = time.monotonic() + self.drain_timeout_s
        # Polling, as uvicorn does: its connection set and the force flag (set from a signal
        # handler, where waking an asyncio.Event is unsafe) have no event to wait on. Each
        # pass also tells connections that took a new request since the last one to close
        # after it.
        while not self.force_exit:
            drain.step(list(state.connections))
            if not self._busy() or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.02)
        past_deadline = len(state.tasks)
        if self._busy():
            self.drained_cleanly = False
            log.error(
                "drain timeout: cutting off in-flight work",
                connections=len(state.connections),
                tasks=past_deadline,
            )
        self.config.timeout_graceful_shutdown = _UVICORN_GRACE_S
        await super().shutdown(sockets)  # cancels stragglers, then the lifespan's shutdown
        self.drain_seconds = time.monotonic() - started
        log.info(
            "drained",
            seconds=round(self.drain_seconds, 3),
            clean=self.drained_cleanly,
            served=state.total_requests,
            served_while_draining=state.total_requests - served_before,
            past_deadline=past_deadline,
            cut_off=self.lifecycle.cut_off,
            closed_idle=drain.closed_idle,
            closed_before_a_request=drain.closed_silent,
            reset_in_accept_queue=reset,
        )
        flush_telemetry()

    async def _wait_for_accept_queue(self, limit_s: float) -> int:
        """Waits (up to ``limit_s``) until the kernel holds no connection nobody has accepted:
        closing the listener would reset them. Returns how many are left to be reset."""
        sockets = [sock for server in self.servers for sock in server.sockets]
        deadline = time.monotonic() + limit_s
        while (queued := accept_queue_length(sockets)) and not self.force_exit:
            if time.monotonic() >= deadline:
                log.warning("closing the listener on unaccepted connections", count=queued)
                return queued
            await asyncio.sleep(0.01)
        return queued

    def _busy(self) -> bool:
        return bool(self.server_state.connections or self.server_state.tasks)

    async def _sleep_unless_forced(self, seconds: float) -> None:
        """The pre-drain delay; a second Ctrl-C (uvicorn's force exit) cuts it short."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.force_exit:  # noqa: ASYNC110
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


def flush_telemetry() -> None:
    """Push out buffered spans and log lines. Metrics are pulled (Prometheus scrapes /metrics
    until the listener closes), so there is nothing of theirs to send. The trace provider is
    looked up, not imported: tracing is optional and set up elsewhere."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is not None:
        provider = trace.get_tracer_provider()
        for method in ("force_flush", "shutdown"):
            call = getattr(provider, method, None)
            if callable(call):
                try:
                    call()
                except Exception as exc:
                    log.warning("trace flush failed", error=repr(exc))
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()


def _start_watchdog(limit_s: float) -> None:
    """Ends the process if the drain outlives ``limit_s``, whatever is stuck (a thread, so a
    blocked event loop cannot stop it)."""

    def expire() -> None:
        log.error("shutdown exceeded its hard limit; exiting now", limit_s=limit_s)
        flush_telemetry()
        os._exit(UNCLEAN_EXIT_CODE)

    timer = threading.Timer(limit_s, expire)
    timer.daemon = True
    timer.start()
