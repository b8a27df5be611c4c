"""Circuit breaker with a rolling failure window.

Closed → open after ``failure_threshold`` failures within the last ``window_s`` seconds; open
for ``open_s`` seconds, then half-open: one trial call goes through (others are refused as if
open); its success closes the breaker, its failure opens it again.

Why our own module: pybreaker, aiobreaker and purgatory all count *consecutive* failures, so
one success in between resets them; the contract asks for N failures within a rolling window,
which a dependency failing every other call must trip too.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import IntEnum

from agora.observability.metrics import CIRCUIT_BREAKER_FAILURES, CIRCUIT_BREAKER_STATE


class BreakerState(IntEnum):
    """Values are the ``agora_circuit_breaker_state`` gauge's."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitOpenError(Exception):
    """The breaker refused the call without trying the dependency."""

    def __init__(self, name: str, retry_after_s: float) -> None:
        super().__init__(f"circuit breaker {name!r} is open")
        self.name = name
        self.retry_after_s = retry_after_s


def every_error(_: BaseException) -> bool:
    return True


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        window_s: float = 10.0,
        open_s: float = 30.0,
        is_failure: Callable[[BaseException], bool] = every_error,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or window_s <= 0 or open_s <= 0:
            raise ValueError("failure_threshold >= 1, window_s > 0 and open_s > 0 are required")
        self.name = name
        self.failure_threshold = failure_threshold
        self.window_s = window_s
        self.open_s = open_s
        self._is_failure = is_failure
        self._clock = clock
        self._failures: deque[float] = deque()
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._trial_in_flight = False
        CIRCUIT_BREAKER_STATE.labels(breaker=name).set(BreakerState.CLOSED)

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.open_s:
            self._set_state(BreakerState.HALF_OPEN)
        return self._state

    @property
    def retry_after_s(self) -> float:
        """Seconds until an open breaker lets a trial through (0 when not open)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.open_s - (self._clock() - self._opened_at))

    def allow(self) -> None:
        """Admit one call or raise :class:`CircuitOpenError`.

        Every admitted call must be followed by exactly one of :meth:`record_success`,
        :meth:`record_failure` or :meth:`release`; :meth:`guard` does that for you.
        """
        state = self.state
        if state is BreakerState.CLOSED:
            return
        if state is BreakerState.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            return
        raise CircuitOpenError(self.name, self.retry_after_s or self.open_s)

    def record_success(self) -> None:
        self._trial_in_flight = False
        if self._state is BreakerState.HALF_OPEN:
            self._failures.clear()
            self._set_state(BreakerState.CLOSED)

    def record_failure(self) -> None:
        CIRCUIT_BREAKER_FAILURES.labels(breaker=self.name).inc()
        now = self._clock()
        if self._state is BreakerState.HALF_OPEN:
            self._trip(now)
            return
        if self._state is BreakerState.OPEN:
            return
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.window_s:
            self._failures.popleft()
        if len(self._failures) >= self.failure_threshold:
            self._trip(now)

    def release(self) -> None:
        """The admitted call ended without telling anything about the dependency (cancelled)."""
        self._trial_in_flight = False

    def reset(self) -> None:
        """Close the breaker now (the operator's ``agora breakers reset``)."""
        self._failures.clear()
        self._trial_in_flight = False
        self._set_state(BreakerState.CLOSED)

    @contextmanager
    def guard(self) -> Iterator[None]:
        """``with breaker.guard(): await call()`` — admits, then records the outcome.

        An exception ``is_failure`` rejects (a unique violation, say) proves the dependency
        answered, so it counts as a success.
        """
        self.allow()
        try:
            yield
        except asyncio.CancelledError:
            self.release()
            raise
        except BaseException as exc:
            if self._is_failure(exc):
                self.record_failure()
            else:
                self.record_success()
            raise
        else:
            self.record_success()

    def _trip(self, now: float) -> None:
        self._opened_at = now
        self._trial_in_flight = False
        self._failures.clear()
        self._set_state(BreakerState.OPEN)

    def _set_state(self, state: BreakerState) -> None:
        self._state = state
        CIRCUIT_BREAKER_STATE.labels(breaker=self.name).set(state)
