from __future__ import annotations

import asyncio

import pytest

from agora.config import Settings
from agora.observability.metrics import CIRCUIT_BREAKER_FAILURES, CIRCUIT_BREAKER_STATE
from agora.resilience import BreakerState, CircuitBreaker, CircuitOpenError
from agora.resilience.registry import BREAKER_NAMES, Breakers


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(clock: FakeClock, name: str = "test") -> CircuitBreaker:
    return CircuitBreaker(name, failure_threshold=5, window_s=10.0, open_s=30.0, clock=clock)


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(ConnectionError), breaker.guard():
            raise ConnectionError("down")


def test_opens_after_threshold_failures_within_the_window() -> None:
    clock = FakeClock()
    breaker = make(clock)
    fail(breaker, 4)
    assert breaker.state is BreakerState.CLOSED
    fail(breaker)
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError) as refused:
        breaker.allow()
    assert refused.value.name == "test"
    assert 0 < refused.value.retry_after_s <= 30


def test_failures_outside_the_rolling_window_do_not_count() -> None:
    clock = FakeClock()
    breaker = make(clock)
    for _ in range(10):
        fail(breaker)
        clock.advance(2.6)  # four failures fit in any 10 s window, never five
    assert breaker.state is BreakerState.CLOSED


def test_successes_in_between_do_not_reset_the_window() -> None:
    # The reason for an own module: consecutive-failure breakers would never open here.
    clock = FakeClock()
    breaker = make(clock)
    for _ in range(4):
        fail(breaker)
        with breaker.guard():
            pass
    fail(breaker)
    assert breaker.state is BreakerState.OPEN


def test_half_open_after_open_period_admits_one_trial() -> None:
    clock = FakeClock()
    breaker = make(clock)
    fail(breaker, 5)
    clock.advance(29.9)
    assert breaker.state is BreakerState.OPEN
    clock.advance(0.2)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.allow()  # the trial
    with pytest.raises(CircuitOpenError):
        breaker.allow()  # a second caller while the trial runs


def test_trial_success_closes_and_trial_failure_reopens() -> None:
    clock = FakeClock()
    breaker = make(clock)
    fail(breaker, 5)
    clock.advance(30)
    fail(breaker)
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after_s == pytest.approx(30)
    clock.advance(30)
    with breaker.guard():
        pass
    assert breaker.state is BreakerState.CLOSED
    fail(breaker, 4)  # the old failures were forgotten
    assert breaker.state is BreakerState.CLOSED


def test_cancelled_trial_frees_the_slot_without_a_verdict() -> None:
    clock = FakeClock()
    breaker = make(clock)
    fail(breaker, 5)
    clock.advance(30)
    with pytest.raises(asyncio.CancelledError), breaker.guard():
        raise asyncio.CancelledError
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.allow()


def test_errors_that_prove_the_dependency_answered_are_successes() -> None:
    breaker = CircuitBreaker(
        "pg", failure_threshold=1, is_failure=lambda exc: isinstance(exc, ConnectionError)
    )
    with pytest.raises(KeyError), breaker.guard():
        raise KeyError("unique violation")
    assert breaker.state is BreakerState.CLOSED


def test_reset_closes_at_once() -> None:
    clock = FakeClock()
    breaker = make(clock)
    fail(breaker, 5)
    breaker.reset()
    assert breaker.state is BreakerState.CLOSED
    breaker.allow()


def test_state_and_failures_are_exported() -> None:
    clock = FakeClock()
    breaker = make(clock, name="metrics-probe")
    before = CIRCUIT_BREAKER_FAILURES.labels(breaker="metrics-probe")._value.get()
    fail(breaker, 5)
    assert CIRCUIT_BREAKER_STATE.labels(breaker="metrics-probe")._value.get() == 1
    assert CIRCUIT_BREAKER_FAILURES.labels(breaker="metrics-probe")._value.get() == before + 5
    clock.advance(30)
    assert breaker.state is BreakerState.HALF_OPEN
    assert CIRCUIT_BREAKER_STATE.labels(breaker="metrics-probe")._value.get() == 2


def test_registry_builds_the_contract_breakers_from_settings() -> None:
    settings = Settings(breaker_failure_threshold=2, breaker_window_s=3, breaker_open_s=4)
    breakers = Breakers(settings)
    assert [b.name for b in breakers] == list(BREAKER_NAMES) == ["postgres", "redis", "jwks"]
    assert breakers.redis.failure_threshold == 2
    assert breakers.redis.window_s == 3
    assert breakers.redis.open_s == 4
    with pytest.raises(KeyError, match="known: postgres, redis, jwks"):
        breakers.get("nope")


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker("x", failure_threshold=0)
