"""Per-connection WebSocket message limits, in process (no Redis round trip per message).

Each connection gets its own GCRA cell (``ratelimit_ws_messages``, 50/second by default). An
excess message is dropped; the client is told with a ``rate_limited`` error at most once a
second (one error per dropped message would let a flood fill its own outbound queue). A
client that is still over the limit ``close_after_s`` after its first dropped message — drops
no more than a second apart — is closed with 1008 (policy violation).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from agora.config import Settings
from agora.ratelimit.gcra import gcra_step
from agora.ratelimit.rates import Rate

# A gap this long without a dropped message ends an abuse streak (ms).
_STREAK_GAP_MS = 1000.0
_NOTICE_EVERY_MS = 1000.0


class Verdict(Enum):
    ALLOW = "allow"
    NOTIFY = "notify"  # drop it, and tell the client
    DROP = "drop"  # drop it silently (told within the last second)
    CLOSE = "close"  # over the limit for too long: close with 1008


@dataclass(frozen=True, slots=True)
class MessageLimits:
    rate: Rate
    close_after_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> MessageLimits | None:
        if not settings.ratelimit_enabled:
            return None
        return cls(settings.ratelimit_ws_messages, settings.ratelimit_ws_close_after_s)

    def for_connection(self, clock: Callable[[], float] = time.monotonic) -> MessageRateLimiter:
        return MessageRateLimiter(self.rate, close_after_s=self.close_after_s, clock=clock)


class MessageRateLimiter:
    __slots__ = (
        "_clock",
        "_close_after_ms",
        "_last_drop",
        "_notified",
        "_rate",
        "_streak",
        "_tat",
        "retry_after_ms",
    )

    def __init__(
        self, rate: Rate, *, close_after_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._close_after_ms = close_after_s * 1000.0
        self._clock = clock
        self._tat: float | None = None
        self._streak = self._last_drop = self._notified = float("-inf")
        self.retry_after_ms = 0

    def check(self) -> Verdict:
        now = self._clock() * 1000.0
        step = gcra_step(self._tat, now, self._rate)
        if step.allowed:
            self._tat = step.tat_ms
            return Verdict.ALLOW
        if now - self._last_drop > _STREAK_GAP_MS:
            self._streak = now
        self._last_drop = now
        self.retry_after_ms = max(1, round(step.retry_after_ms))
        if now - self._streak >= self._close_after_ms:
            return Verdict.CLOSE
        if now - self._notified >= _NOTICE_EVERY_MS:
            self._notified = now
            return Verdict.NOTIFY
        return Verdict.DROP
