"""GCRA (the generic cell rate algorithm), and the in-process store that runs it.

GCRA is a token bucket kept as one number per client: the *theoretical arrival time* (TAT)
of the next event at the steady rate. A request at ``now`` is allowed when, after adding one
emission interval ``T = period / limit`` to the TAT, the TAT is no more than one period ahead
of ``now``. So a fresh client may burst ``limit`` requests, then one every ``T``; the burst is
never larger than ``limit`` (a fixed window lets ``2 * limit`` through in an instant that
straddles its boundary), and the state is one float per key whatever the limit.

The Redis script in ``redis_store`` is this same function in Lua, line for line; the tests
drive both with one controlled clock and compare every decision.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from agora.ratelimit.rates import Rate

# Floating-point slack (ms) so that 7/minute-style intervals do not lose a slot to rounding.
EPSILON_MS = 1e-6


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: float
    """Seconds until the full quota is available again."""
    retry_after_s: float
    """Seconds until the next request would be allowed (0 when this one was)."""
    strikes: int = 0
    """Rejections of this key in a row (within the back-off cap): drives the suggested backoff."""

    def suggested_backoff_s(self, cap_s: int) -> int:
        """Retry-After doubled for each consecutive rejection, capped: a client that keeps
        hitting the limit is told to wait longer each time."""
        base = max(1, math.ceil(self.retry_after_s))
        doublings = max(0, min(self.strikes - 1, 30))
        return min(cap_s, base << doublings)


@dataclass(frozen=True, slots=True)
class Step:
    allowed: bool
    tat_ms: float
    remaining: int
    reset_ms: float
    retry_after_ms: float


def gcra_step(tat_ms: float | None, now_ms: float, rate: Rate) -> Step:
    """One request against a key whose stored TAT is ``tat_ms`` (None: unseen or expired)."""
    period = rate.period_s * 1000.0
    interval = period / rate.limit
    tat = now_ms if tat_ms is None or tat_ms < now_ms else tat_ms
    new_tat = tat + interval
    allow_at = new_tat - period
    if now_ms + EPSILON_MS < allow_at:
        return Step(False, tat, 0, tat - now_ms, allow_at - now_ms)
    remaining = math.floor((now_ms - allow_at) / interval + EPSILON_MS)
    return Step(True, new_tat, min(remaining, rate.limit - 1), new_tat - now_ms, 0.0)


class MemoryStore:
    """GCRA in this process: the fallback while Redis is away, and the WebSocket limiter.

    Bounded: past ``max_keys`` the least recently used key is forgotten (its client starts
    afresh, which errs on the side of letting a request through, never of refusing one).
    """

    def __init__(self, *, max_keys: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._max_keys = max_keys
        # key -> [tat_ms, strikes, strikes_expire_ms]
        self._cells: OrderedDict[str, list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._cells)

    def hit(self, key: str, rate: Rate, *, strike_ttl_s: float) -> Decision:
        now = self._clock() * 1000.0
        cell = self._cells.get(key)
        if cell is None:
            cell = [now, 0.0, 0.0]
            self._cells[key] = cell
            if len(self._cells) > self._max_keys:
                self._cells.popitem(last=False)
        else:
            self._cells.move_to_end(key)
        if cell[2] <= now:
            cell[1] = 0.0
        step = gcra_step(cell[0], now, rate)
        if step.allowed:
            cell[0] = step.tat_ms
        else:
            cell[1] += 1
            cell[2] = now + strike_ttl_s * 1000.0
        return Decision(
            allowed=step.allowed,
            limit=rate.limit,
            remaining=step.remaining,
            reset_s=step.reset_ms / 1000.0,
            retry_after_s=step.retry_after_ms / 1000.0,
            strikes=0 if step.allowed else int(cell[1]),
        )
