"""What a use of Redis declares: its policy without Redis, timeout and breaker (no imports of
the rest of Agora, so anything may import it, the observability modules included)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

TimeoutName = Literal["socket", "ratelimit"]
"""``socket``: ``AGORA_REDIS_SOCKET_TIMEOUT_S``; ``ratelimit``: ``AGORA_RATELIMIT_REDIS_TIMEOUT_S``
(the limiter sits on every request, so it gives up sooner)."""


class Degrade(enum.Enum):
    """What a use does when Redis cannot answer."""

    OPEN = "fail open"  # carry on without it: the feature is skipped for this call
    FALLBACK = "fall back"  # another source answers (PostgreSQL, in-process state, primary)
    CLOSED = "fail closed"  # refuse the operation: 503 with Retry-After


@dataclass(frozen=True, slots=True)
class Use:
    name: str
    degrade: Degrade
    without_redis: str
    """What happens without Redis, in words: logged with the failure, listed in the docs."""
    guarded: bool = True
    """Behind the ``redis`` breaker: while it is open the call fails at once, no wait."""
    timeout: TimeoutName = "socket"
    refusal: str = "this is unavailable right now; try again shortly"
    """The 503's message, for a ``CLOSED`` use."""


class RedisUnavailable(Exception):
    """Redis did not answer a call of ``use`` (error, timeout or open breaker)."""

    def __init__(self, use: Use, cause: BaseException) -> None:
        super().__init__(f"redis unavailable for {use.name}: {cause!r}")
        self.use = use
        self.cause = cause
