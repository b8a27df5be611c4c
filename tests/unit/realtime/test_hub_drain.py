"""The hub's shutdown drain: every socket is told, then closed with 1012, after what it was
already owed; a socket accepted during the drain is told at once."""

from __future__ import annotations

import asyncio

from agora.services.realtime.hub import (
    QUEUE_SIZE,
    SERVICE_RESTART_CLOSE_CODE,
    Connection,
    Hub,
    reconnect_delay_ms,
)
from tests.unit.realtime.test_hub import FakeSocket


async def test_drain_says_goodbye_after_pending_frames_and_waits_for_everyone(hub: Hub) -> None:
    sockets = [FakeSocket() for _ in range(3)]
    conns = [Connection(f"user{i}", s) for i, s in enumerate(sockets)]
    for conn in conns:
        hub.register(conn)
    hub.send_to_users(["user0"], "pending", "notification")
    senders = [asyncio.create_task(c.run_sender()) for c in conns]

    async def leave_when_closed(conn: Connection, sender: asyncio.Task[None]) -> None:
        await sender  # the sender closed the socket: the session ends and unregisters
        hub.unregister(conn)

    leaving = [
        asyncio.create_task(leave_when_closed(c, t)) for c, t in zip(conns, senders, strict=True)
    ]
    await asyncio.wait_for(hub.drain(lambda: "goodbye"), timeout=2)
    await asyncio.gather(*leaving)
    assert [s.frames for s in sockets] == [["pending", "goodbye"], ["goodbye"], ["goodbye"]]
    assert all(s.closed_with == SERVICE_RESTART_CLOSE_CODE for s in sockets)
    assert len(hub) == 0

    late_socket = FakeSocket()
    late = Connection("late", late_socket)
    hub.register(late)  # a handshake that completed during the drain
    await asyncio.wait_for(late.run_sender(), timeout=1)
    assert (late_socket.frames, late_socket.closed_with) == (["goodbye"], 1012)


async def test_a_full_queue_is_dropped_so_the_goodbye_always_fits() -> None:
    socket = FakeSocket()
    conn = Connection("u", socket)
    for i in range(QUEUE_SIZE):
        assert conn.offer(f"frame-{i}")
    assert conn.say_goodbye("goodbye")
    assert not conn.say_goodbye("twice")
    await asyncio.wait_for(conn.run_sender(), timeout=1)
    assert socket.frames == ["goodbye"]
    assert socket.closed_with == SERVICE_RESTART_CLOSE_CODE


def test_reconnect_delays_are_spread_within_the_jitter() -> None:
    delays = {reconnect_delay_ms(5000) for _ in range(200)}
    assert all(0 <= d <= 5000 for d in delays)
    assert len(delays) > 100
    assert reconnect_delay_ms(0) == 0
