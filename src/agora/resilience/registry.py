"""The breakers of one process, one per dependency, named as the metric label is."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal, get_args

from agora.config import Settings
from agora.resilience.breaker import CircuitBreaker, every_error

BreakerName = Literal["postgres", "redis", "jwks"]
BREAKER_NAMES: tuple[BreakerName, ...] = get_args(BreakerName)


class Breakers:
    def __init__(
        self,
        settings: Settings,
        *,
        is_failure: dict[BreakerName, Callable[[BaseException], bool]] | None = None,
    ) -> None:
        predicates = is_failure or {}
        self._by_name: dict[str, CircuitBreaker] = {}
        for name in BREAKER_NAMES:
            self._by_name[name] = CircuitBreaker(
                name,
                failure_threshold=settings.breaker_failure_threshold,
                window_s=settings.breaker_window_s,
                open_s=settings.breaker_open_s,
                is_failure=predicates.get(name, every_error),
            )

    @property
    def postgres(self) -> CircuitBreaker:
        return self._by_name["postgres"]

    @property
    def redis(self) -> CircuitBreaker:
        return self._by_name["redis"]

    @property
    def jwks(self) -> CircuitBreaker:
        return self._by_name["jwks"]

    def get(self, name: str) -> CircuitBreaker:
        """The breaker called ``name``; KeyError names the valid ones."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no breaker {name!r}; known: {', '.join(BREAKER_NAMES)}") from None

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter(self._by_name.values())
