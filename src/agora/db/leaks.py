"""Leak detection: connections held longer than a threshold, reported with their acquirer.

The acquirer's stack is captured at checkout because a suspended coroutine's frame no longer
links to its callers: by the time a leak is noticed, only the stack taken at checkout still
says who took the connection. Only (code, line) pairs are kept, a few microseconds; they are
formatted when a leak is reported (``traceback.StackSummary`` at checkout cost ~20x more).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from dataclasses import dataclass
from types import CodeType, FrameType

from agora.observability.logging import get_logger
from agora.observability.metrics import ERRORS

log = get_logger(__name__)

_STACK_LIMIT = 16


@dataclass(slots=True)
class Checkout:
    taken_at: float
    stack: list[tuple[CodeType, int]]
    reported: bool = False

    def format(self) -> str:
        """Innermost call last, like a traceback."""
        return "".join(
            f'  File "{code.co_filename}", line {line}, in {code.co_name}\n'
            for code, line in reversed(self.stack)
        )


class LeakDetector:
    def __init__(self, *, pool: str, threshold_s: float) -> None:
        self._pool = pool
        self.threshold_s = threshold_s
        self._held: dict[int, Checkout] = {}
        self._ids = itertools.count()
        self._task: asyncio.Task[None] | None = None
        self.leaks_reported = 0

    @property
    def enabled(self) -> bool:
        return self.threshold_s > 0

    def taken(self) -> int:
        """Remember a checkout; returns the token :meth:`returned` takes."""
        token = next(self._ids)
        if self.enabled:
            stack: list[tuple[CodeType, int]] = []
            frame: FrameType | None = sys._getframe(2)
            while frame is not None and len(stack) < _STACK_LIMIT:
                stack.append((frame.f_code, frame.f_lineno))
                frame = frame.f_back
            self._held[token] = Checkout(time.monotonic(), stack)
        return token

    def returned(self, token: int) -> None:
        checkout = self._held.pop(token, None)
        if checkout is not None and checkout.reported:
            log.warning(
                "leaked database connection returned",
                pool=self._pool,
                held_s=round(time.monotonic() - checkout.taken_at, 1),
            )

    def scan(self) -> int:
        """Report every connection held past the threshold (once each); returns how many."""
        now = time.monotonic()
        found = 0
        for checkout in self._held.values():
            if checkout.reported or now - checkout.taken_at < self.threshold_s:
                continue
            checkout.reported = True
            found += 1
            self.leaks_reported += 1
            ERRORS.labels(type="db_connection_leak").inc()
            log.error(
                "database connection held too long (leak?)",
                pool=self._pool,
                held_s=round(now - checkout.taken_at, 1),
                threshold_s=self.threshold_s,
                acquired_at=checkout.format(),
            )
        return found

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"db-leak-detector-{self._pool}")

    async def stop(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        # A quarter of the threshold: a leak is reported at most 25% late, and the scan of a
        # dict of held connections is too cheap to matter.
        interval = min(max(self.threshold_s / 4, 0.05), 30.0)
        while True:
            await asyncio.sleep(interval)
            self.scan()
