"""Resilience primitives shared by every service: circuit breakers (and their registry)."""

from agora.resilience.breaker import BreakerState, CircuitBreaker, CircuitOpenError

__all__ = ["BreakerState", "CircuitBreaker", "CircuitOpenError"]
