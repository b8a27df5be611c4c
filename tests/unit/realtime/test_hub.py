"""The hub's delivery guarantees: fan-out to every socket of a user, and a slow consumer is
cut off (closed with 1013) without holding up anyone else."""

from __future__ import annotations

import asyncio

from agora.services.realtime.hub import QUEUE_SIZE, SLOW_CONSUMER_CLOSE_CODE, Connection, Hub


class FakeSocket:
    """Records frames; ``stall()`` makes sends hang like a client that stopped reading."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.closed_with: int | None = None
        self._open = asyncio.Event()
        self._open.set()

    def stall(self) -> None:
        self._open.clear()

    def resume(self) -> None:
        self._open.set()

    async def send_text(self, data: str) -> None:
        await self._open.wait()
        self.frames.append(data)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:  # noqa: ARG002  # the socket's signature
        self.closed_with = code


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_user_with_several_sockets_gets_each_frame_on_each(hub: Hub) -> None:
    sockets = [FakeSocket() for _ in range(3)]
    conns = [Connection("alice" if i < 2 else "bob", s) for i, s in enumerate(sockets)]
    senders = [asyncio.create_task(c.run_sender()) for c in conns]
    for conn in conns:
        hub.register(conn)
    assert len(hub) == 3
    assert sorted(hub.user_ids()) == ["alice", "bob"]
    assert hub.send_to_users(["alice", "nobody"], "frame", "notification") == 2
    await settle()
    assert [s.frames for s in sockets] == [["frame"], ["frame"], []]
    hub.unregister(conns[0])
    hub.unregister(conns[0])  # idempotent
    assert len(hub) == 2
    assert hub.send_to_user("alice", "again", "notification") == 1
    for task in senders:
        task.cancel()
    await asyncio.gather(*senders, return_exceptions=True)


async def test_a_slow_consumer_is_closed_and_others_keep_receiving(hub: Hub) -> None:
    slow_socket, fast_socket = FakeSocket(), FakeSocket()
    slow, fast = Connection("slow", slow_socket), Connection("fast", fast_socket)
    senders = [asyncio.create_task(c.run_sender()) for c in (slow, fast)]
    hub.register(slow)
    hub.register(fast)

    slow_socket.stall()
    hub.send_to_users(["slow", "fast"], "frame-0", "post.created")
    await settle()  # the slow sender is now stuck inside a send
    for i in range(1, QUEUE_SIZE + 5):
        hub.send_to_users(["slow", "fast"], f"frame-{i}", "post.created")
        if i % 32 == 0:
            await settle()
    await settle()

    # The fast socket got everything, in order, while the slow one was stuck.
    assert fast_socket.frames == [f"frame-{i}" for i in range(QUEUE_SIZE + 5)]
    # The slow one overflowed: out of the registry, refusing further frames.
    assert slow.closing
    assert not hub.is_connected("slow")
    assert len(hub) == 1
    assert not slow.offer("late")

    slow_socket.resume()
    await asyncio.wait_for(senders[0], timeout=1)
    # Only the frame in flight went out; the backlog was dropped and the socket closed.
    assert slow_socket.frames == ["frame-0"]
    assert slow_socket.closed_with == SLOW_CONSUMER_CLOSE_CODE
    senders[1].cancel()
    await asyncio.gather(senders[1], return_exceptions=True)


async def test_the_sender_ends_quietly_when_the_client_is_gone() -> None:
    class GoneSocket(FakeSocket):
        async def send_text(self, data: str) -> None:  # noqa: ARG002  # the socket's signature
            raise OSError("connection reset")

    conn = Connection("u", GoneSocket())
    sender = asyncio.create_task(conn.run_sender())
    assert conn.offer("frame")
    await asyncio.wait_for(sender, timeout=1)
    assert sender.exception() is None
