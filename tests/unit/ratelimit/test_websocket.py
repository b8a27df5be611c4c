"""The per-connection WebSocket message limiter, with a controlled clock."""

from __future__ import annotations

from collections import Counter

from agora.ratelimit.rates import Rate
from agora.ratelimit.websocket import MessageLimits, MessageRateLimiter, Verdict
from tests.unit.ratelimit.test_gcra import Clock

LIMITS = MessageLimits(Rate(50, 1), close_after_s=3.0)


def limiter(clock: Clock) -> MessageRateLimiter:
    return LIMITS.for_connection(clock=clock)


def test_a_burst_of_200_gets_50_through_and_one_notice() -> None:
    clock = Clock()
    ws = limiter(clock)
    verdicts = Counter(ws.check() for _ in range(200))
    assert verdicts == {Verdict.ALLOW: 50, Verdict.NOTIFY: 1, Verdict.DROP: 149}
    assert ws.retry_after_ms == 20


def test_one_notice_per_second_while_over() -> None:
    clock = Clock()
    ws = limiter(clock)
    notices = 0
    for _ in range(200):  # 2 s at 100 messages/s: twice the limit
        notices += ws.check() is Verdict.NOTIFY
        clock.advance(0.01)
    assert notices == 2


def test_a_single_burst_is_forgiven() -> None:
    clock = Clock()
    ws = limiter(clock)
    for _ in range(200):
        ws.check()
    clock.advance(1.5)
    assert ws.check() is Verdict.ALLOW
    # Over again later: a new streak, so a notice, not a close.
    clock.advance(3.0)
    verdicts = [ws.check() for _ in range(60)]
    assert Verdict.CLOSE not in verdicts
    assert Verdict.NOTIFY in verdicts


def test_sustained_abuse_is_closed_after_the_grace() -> None:
    clock = Clock()
    ws = limiter(clock)
    verdicts: list[tuple[float, Verdict]] = []
    for _ in range(1000):  # 200 messages/s, four times the limit
        verdicts.append((clock.now - 1_000_000.0, ws.check()))
        clock.advance(0.005)
    first_close = next(t for t, v in verdicts if v is Verdict.CLOSE)
    assert 3.0 <= first_close < 3.5


def test_a_client_at_the_limit_is_never_refused() -> None:
    clock = Clock()
    ws = limiter(clock)
    for _ in range(500):  # exactly 50/s for 10 s
        assert ws.check() is Verdict.ALLOW
        clock.advance(0.02)
