"""GCRA with a controlled clock (the in-process store; the Redis script is checked against
it in tests/integration/ratelimit)."""

from __future__ import annotations

import pytest

from agora.ratelimit.gcra import Decision, MemoryStore, gcra_step
from agora.ratelimit.rates import Rate


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


PER_MINUTE = Rate(100, 60)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> MemoryStore:
    return MemoryStore(clock=clock)


def hits(store: MemoryStore, n: int, rate: Rate = PER_MINUTE, key: str = "k") -> list[Decision]:
    return [store.hit(key, rate, strike_ttl_s=300) for _ in range(n)]


def test_a_fresh_client_gets_exactly_the_limit_at_once(store: MemoryStore) -> None:
    decisions = hits(store, 101)
    assert all(d.allowed for d in decisions[:100])
    assert [d.remaining for d in decisions[:3]] == [99, 98, 97]
    assert decisions[99].remaining == 0
    refused = decisions[100]
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(0.6)  # one emission interval: 60 s / 100
    assert refused.reset_s == pytest.approx(60.0)


def test_quota_returns_at_the_steady_rate(store: MemoryStore, clock: Clock) -> None:
    hits(store, 100)
    clock.advance(0.59)
    assert not hits(store, 1)[0].allowed
    clock.advance(0.01)
    assert hits(store, 1)[0].allowed
    assert not hits(store, 1)[0].allowed
    clock.advance(6.0)  # ten intervals: ten requests
    assert sum(d.allowed for d in hits(store, 20)) == 10


def test_no_double_burst_at_a_window_boundary(store: MemoryStore, clock: Clock) -> None:
    """A fixed one-minute window lets 100 through at 0:59.9 and 100 more at 1:00.1. GCRA lets
    the second burst have only what has been earned back in those 0.2 s."""
    clock.advance(59.9)
    assert all(d.allowed for d in hits(store, 100))
    clock.advance(0.2)
    assert sum(d.allowed for d in hits(store, 100)) == 0
    clock.advance(0.4)
    assert sum(d.allowed for d in hits(store, 100)) == 1


def test_long_run_throughput_is_the_rate(store: MemoryStore, clock: Clock) -> None:
    allowed = 0
    for _ in range(10 * 60 * 10):  # ten minutes, a request every 0.1 s (10x the rate)
        allowed += hits(store, 1)[0].allowed
        clock.advance(0.1)
    # The initial burst of 100, then exactly 100 per minute.
    assert allowed == pytest.approx(100 + 10 * 100, abs=1)


def test_keys_are_independent(store: MemoryStore) -> None:
    hits(store, 100, key="a")
    assert not hits(store, 1, key="a")[0].allowed
    assert hits(store, 1, key="b")[0].allowed


def test_rejections_are_not_charged(store: MemoryStore, clock: Clock) -> None:
    """A client hammering while refused does not push its own recovery further away."""
    hits(store, 100)
    hits(store, 1000)
    clock.advance(0.6)
    assert hits(store, 1)[0].allowed


def test_suggested_backoff_doubles_and_is_capped(store: MemoryStore, clock: Clock) -> None:
    rate = Rate(5, 60)  # retry after 12 s once empty
    hits(store, 5, rate)
    refusals = hits(store, 6, rate)
    assert [d.strikes for d in refusals] == [1, 2, 3, 4, 5, 6]
    assert [d.suggested_backoff_s(300) for d in refusals] == [12, 24, 48, 96, 192, 300]
    # Strikes are forgiven once the client stays away for the cap.
    clock.advance(301)
    hits(store, 5, rate)
    assert hits(store, 1, rate)[0].strikes == 1


def test_odd_intervals_do_not_lose_slots_to_rounding(store: MemoryStore) -> None:
    decisions = hits(store, 8, Rate(7, 60))
    assert [d.allowed for d in decisions] == [True] * 7 + [False]
    assert [d.remaining for d in decisions[:7]] == [6, 5, 4, 3, 2, 1, 0]


def test_memory_is_bounded(clock: Clock) -> None:
    store = MemoryStore(max_keys=3, clock=clock)
    for key in "abcd":
        store.hit(key, PER_MINUTE, strike_ttl_s=1)
    assert len(store) == 3


def test_step_is_pure() -> None:
    first = gcra_step(None, 0.0, Rate(2, 1))
    assert first.allowed
    assert first.tat_ms == pytest.approx(500.0)
    second = gcra_step(first.tat_ms, 0.0, Rate(2, 1))
    assert second.allowed
    assert second.remaining == 0
    third = gcra_step(second.tat_ms, 0.0, Rate(2, 1))
    assert not third.allowed
    assert third.retry_after_ms == pytest.approx(500.0)
