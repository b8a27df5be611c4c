"""Admission control: a bounded number of HTTP requests in the application at once.

Past its capacity a process that takes every request serves none of them well: the event loop
falls behind, every request's Redis and PostgreSQL budgets expire while it waits its turn
(although both are healthy), the fallbacks cost more than the work they replace, and useful
throughput falls towards zero — measured before this existed: ~560 req/s at 64 connections, 43%
503s at 256, ~100% at 1,000. With a bound, the requests inside keep the latency of a loaded but
not overloaded process and the excess gets the contract's 503 + ``Retry-After``, which a client
or the gateway retries elsewhere.

Past the bound a request first waits, without cost, in a bounded queue for at most
``queue_timeout_s`` (a client that waits does not ask again; one refused at once does, and a
closed-loop burst of refusals is work too); when the queue is full or the wait is over it is
refused. The refusal must cost next to nothing, or at 16x the offered load refusing is all the
process does: so this is the outermost middleware and answers from prepared headers — no token
check, no Redis, no span, no access line per refusal (a summary line at most every 10 s), only
counters. At rates far beyond one process the gateway's own bound refuses first.

WebSockets are not counted: they are long-lived and bounded by their own caps. Probes and
``/metrics`` are never refused, so an overloaded instance is not taken for a dead one.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Collection

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from agora.observability.logging import get_logger
from agora.observability.metrics import (
    ADMISSION_IN_FLIGHT,
    ADMISSION_REJECTIONS,
    ADMISSION_WAITING,
    ERRORS,
    HTTP_REQUESTS,
)
from agora.security.headers import api_security_headers

log = get_logger(__name__)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_MESSAGE = "the server is at capacity; retry the request"
_SUMMARY_EVERY_S = 10.0


class AdmissionControl:
    """Pure ASGI: at most ``limit`` HTTP requests below it at once; the next one is refused."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        service: str,
        limit: int,
        queue: int,
        queue_timeout_s: float,
        exempt_paths: Collection[str],
    ) -> None:
        self.app = app
        self._service = service
        self._limit = limit
        self._queue_limit = queue
        self._queue_timeout_s = queue_timeout_s
        self._exempt = frozenset(exempt_paths)
        self._in_flight = 0
        # FIFO of waiters; a waiter that gave up stays in it, cancelled, and is skipped.
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._waiting = 0
        self._headers = (
            (b"content-type", b"application/json"),
            (b"retry-after", b"1"),
            *api_security_headers(),
        )
        self._refused_since_summary = 0
        self._next_summary = 0.0
        self._errors = ERRORS.labels("overloaded")
        # Read when scraped, not set twice per request (each set takes the metric's lock).
        ADMISSION_IN_FLIGHT.set_function(lambda: self._in_flight)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._exempt:
            await self.app(scope, receive, send)
            return
        if self._in_flight < self._limit:
            self._in_flight += 1
        elif not await self._turn():
            await self._refuse(scope, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._release()

    async def _turn(self) -> bool:
        """Wait for a slot handed over by a finishing request; False: refused."""
        if self._waiting >= self._queue_limit:
            return False
        if len(self._waiters) > 2 * self._queue_limit:  # those that gave up, while none finished
            self._waiters = deque(waiter for waiter in self._waiters if not waiter.done())
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        self._waiting += 1
        ADMISSION_WAITING.set(self._waiting)
        try:
            await asyncio.wait([turn], timeout=self._queue_timeout_s)
        except BaseException:
            if turn.done():
                self._release()  # handed the slot as this request was cancelled: pass it on
            else:
                turn.cancel()
            raise
        finally:
            self._waiting -= 1
            ADMISSION_WAITING.set(self._waiting)
        if turn.done():
            return True  # the slot (and its count in _in_flight) is ours now
        turn.cancel()  # waited long enough: skipped by _release
        return False

    def _release(self) -> None:
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot passes on: _in_flight unchanged
                return
        self._in_flight -= 1

    async def _refuse(self, scope: Scope, send: Send) -> None:
        ADMISSION_REJECTIONS.inc()
        self._errors.inc()
        method = scope["method"] if scope["method"] in _METHODS else "other"
        # Counted with the other answers, so the error-rate SLO sees the refusals; the route
        # is not known before routing, hence one route label for all of them.
        HTTP_REQUESTS.labels(self._service, method, "(shed)", "503").inc()
        request_id = f"{random.getrandbits(128):032x}"  # nosec B311 # an id, not a secret
        body = orjson.dumps(
            {"error": {"code": "overloaded", "message": _MESSAGE, "request_id": request_id}}
        )
        headers = [
            *self._headers,
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self._refused_since_summary += 1
        now = time.monotonic()
        if now >= self._next_summary:
            log.warning(
                "shedding load",
                refused=self._refused_since_summary,
                in_flight=self._in_flight,
                limit=self._limit,
            )
            self._refused_since_summary = 0
            self._next_summary = now + _SUMMARY_EVERY_S
