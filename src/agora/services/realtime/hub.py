"""This instance's WebSocket connections, and delivery of frames to them.

Every socket gets a bounded outbound queue drained by its own sender task, so delivering an
event is a handful of ``put_nowait`` calls: a slow or stalled client can never hold up the
subscriber or the other sockets.

Slow-consumer policy: when a socket's queue is full (the client has not read ``QUEUE_SIZE``
frames), the backlog is dropped and the socket is closed with 1013 (try again later) instead
of silently dropping the oldest frames. A client that missed events then knows it did: it
reconnects and re-reads its feed and notifications over HTTP, which are the source of truth.
The socket also leaves the registry at once, so it gets no more fan-out work and its presence
entry is no longer refreshed (it ages out even if the peer never completes the close).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Literal, Protocol

from agora.observability.metrics import WEBSOCKET_CONNECTIONS, WEBSOCKET_MESSAGES

# Room the goodbye needs in a full queue: the frame itself and the close after it.
_GOODBYE_SLOTS = 2


QUEUE_SIZE = 256
SLOW_CONSUMER_CLOSE_CODE = 1013
# RFC 6455 "service restart": the client should reconnect (to another instance).
SERVICE_RESTART_CLOSE_CODE = 1012
# RFC 6455 "policy violation": the account behind the socket was deleted.
ACCOUNT_DELETED_CLOSE_CODE = 1008
# Application codes (RFC 6455 private range). 4001: the socket's session ended (logout,
# refresh-token reuse, password change, revoked from the session list): log in again.
# 4002: the socket's access token expired without an in-band ``auth``: refresh, reconnect.
# 4003: the key that signed the socket's token was revoked (``agora keys revoke``): the
# session is intact, so refresh (the successor key signs) and reconnect, as after 4002.
SESSION_ENDED_CLOSE_CODE = 4001
TOKEN_EXPIRED_CLOSE_CODE = 4002
KEY_REVOKED_CLOSE_CODE = 4003
# Revoked kids a hub remembers (a handful in a process's life; the bound is only a guard).
_REMEMBERED_REVOKED_KEYS = 64

FrameType = Literal["post.created", "notification", "pong", "error", "server.draining", "auth.ok"]

_CONNECTIONS = WEBSOCKET_CONNECTIONS.labels("realtime")
_SENT = {
    kind: WEBSOCKET_MESSAGES.labels("out", kind)
    for kind in ("post.created", "notification", "pong", "error", "server.draining", "auth.ok")
}
_CLOSE_REASONS = {
    SLOW_CONSUMER_CLOSE_CODE: "too slow; reconnect",
    SERVICE_RESTART_CLOSE_CODE: "server restarting; reconnect",
    ACCOUNT_DELETED_CLOSE_CODE: "account deleted",
    SESSION_ENDED_CLOSE_CODE: "session ended",
    TOKEN_EXPIRED_CLOSE_CODE: "token expired",
    KEY_REVOKED_CLOSE_CODE: "signing key revoked",
}


class FrameSink(Protocol):
    """What a connection needs from its socket (Starlette's ``WebSocket`` is one)."""

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


class Connection:
    """One socket: a few attributes and a queue, nothing heavy (thousands live per process)."""

    __slots__ = ("_queue", "closing", "id", "key_id", "session_id", "sink", "user_id")

    def __init__(
        self,
        user_id: str,
        sink: FrameSink,
        *,
        session_id: str | None = None,
        key_id: str | None = None,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.id = uuid.uuid4().hex
        self.user_id = user_id
        # The login session of the token the socket authenticated with (changes on an
        # in-band re-authentication); None for a token without one.
        self.session_id = session_id
        # The kid that signed that token (changes with it).
        self.key_id = key_id
        self.sink = sink
        self.closing = False
        # A close code in the queue asks the sender to close the socket after what is before it.
        self._queue: asyncio.Queue[str | int] = asyncio.Queue(maxsize=queue_size)

    def offer(self, frame: str) -> bool:
        """Queue a frame without waiting; False when the socket is (now) being closed."""
        if self.closing:
            return False
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            self._discard_backlog()
            self._queue.put_nowait(SLOW_CONSUMER_CLOSE_CODE)
            self.closing = True
            return False
        return True

    def say_goodbye(self, frame: str) -> bool:
        """Queue ``frame`` (after what is already queued) and then a 1012 close; False when the
        socket is already closing. A full queue is dropped first: the client reconnects and
        re-reads over HTTP anyway."""
        if self.closing:
            return False
        self.closing = True
        if self._queue.maxsize - self._queue.qsize() < _GOODBYE_SLOTS:
            self._discard_backlog()
        self._queue.put_nowait(frame)
        self._queue.put_nowait(SERVICE_RESTART_CLOSE_CODE)
        return True

    def close_now(self, code: int) -> bool:
        """Drop what is queued and close with ``code`` next; False when already closing."""
        if self.closing:
            return False
        self.closing = True
        self._discard_backlog()
        self._queue.put_nowait(code)
        return True

    def _discard_backlog(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    async def run_sender(self) -> None:
        """Drain the queue into the socket until closed; ends quietly when the client is gone
        (the receive loop sees the disconnect and cleans up)."""
        try:
            while True:
                frame = await self._queue.get()
                if isinstance(frame, int):
                    await self.sink.close(frame, _CLOSE_REASONS[frame])
                    return
                await self.sink.send_text(frame)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: S110  # nosec B110 # a send fails only when the client is gone
            pass


class Hub:
    """Registry of local connections by user; one user may hold several sockets (tabs)."""

    def __init__(self) -> None:
        self._by_user: dict[str, set[Connection]] = {}
        self._draining: Callable[[], str] | None = None
        self._revoked_keys: dict[str, None] = {}  # insertion-ordered set
        self._empty = asyncio.Event()
        self._empty.set()

    def __len__(self) -> int:
        return sum(len(conns) for conns in self._by_user.values())

    def register(self, conn: Connection) -> None:
        conns = self._by_user.setdefault(conn.user_id, set())
        if conn not in conns:
            conns.add(conn)
            _CONNECTIONS.inc()
            self._empty.clear()
        if self._draining is not None:
            # Accepted while the instance drains (a handshake already under way): told at once.
            self._goodbye(conn, self._draining())
        elif conn.key_id in self._revoked_keys:
            # Its handshake verified the token just before the revocation was heard.
            conn.close_now(KEY_REVOKED_CLOSE_CODE)

    def unregister(self, conn: Connection) -> None:
        """Idempotent: the session's cleanup and the slow-consumer path may both call it."""
        conns = self._by_user.get(conn.user_id)
        if conns is None or conn not in conns:
            return
        conns.discard(conn)
        if not conns:
            del self._by_user[conn.user_id]
        _CONNECTIONS.dec()
        if not self._by_user:
            self._empty.set()

    def user_ids(self) -> list[str]:
        return list(self._by_user)

    def is_connected(self, user_id: str) -> bool:
        return user_id in self._by_user

    def connections(self) -> Iterator[Connection]:
        """Every local connection (a snapshot: safe while sockets come and go)."""
        for conns in list(self._by_user.values()):
            yield from list(conns)

    def send_to_user(self, user_id: str, frame: str, kind: FrameType) -> int:
        return self.send_to_users((user_id,), frame, kind)

    def send_to_users(self, user_ids: Iterable[str], frame: str, kind: FrameType) -> int:
        """Queue ``frame`` on every socket of these users; returns how many took it."""
        delivered = 0
        for user_id in user_ids:
            conns = self._by_user.get(user_id)
            if not conns:
                continue
            for conn in list(conns):
                if conn.offer(frame):
                    delivered += 1
                elif conn.closing:
                    self.unregister(conn)
        if delivered:
            _SENT[kind].inc(delivered)
        return delivered

    def close_user(self, user_id: str, code: int) -> int:
        """Close every local socket of ``user_id`` with ``code``; returns how many."""
        return sum(conn.close_now(code) for conn in list(self._by_user.get(user_id, ())))

    def end_sessions(self, user_id: str, session_ids: Iterable[str]) -> int:
        """Close (4001) the local sockets of ``user_id`` opened in one of ``session_ids``."""
        ended = set(session_ids)
        return sum(
            conn.close_now(SESSION_ENDED_CLOSE_CODE)
            for conn in list(self._by_user.get(user_id, ()))
            if conn.session_id is not None and conn.session_id in ended
        )

    def close_signed_by(self, kid: str) -> int:
        """Close (4003) every local socket whose token ``kid`` signed, and any that registers
        later with such a token; returns how many were closed now."""
        self._revoked_keys[kid] = None
        while len(self._revoked_keys) > _REMEMBERED_REVOKED_KEYS:
            del self._revoked_keys[next(iter(self._revoked_keys))]
        return sum(
            conn.close_now(KEY_REVOKED_CLOSE_CODE)
            for conn in self.connections()
            if conn.key_id == kid
        )

    def reply(self, conn: Connection, frame: str, kind: FrameType) -> None:
        """A direct answer to one socket (pong, error) through the same single writer."""
        if conn.offer(frame):
            _SENT[kind].inc()
        elif conn.closing:
            self.unregister(conn)

    def _goodbye(self, conn: Connection, frame: str) -> None:
        if conn.say_goodbye(frame):
            _SENT["server.draining"].inc()

    async def drain(self, frame: Callable[[], str]) -> None:
        """Shutdown: every socket gets ``frame()`` (``server.draining``, each with its own
        jittered reconnect delay) and then a 1012 close; returns when all have left. The caller
        bounds the wait (``Lifecycle.drain``)."""
        self._draining = frame
        for conn in self.connections():
            self._goodbye(conn, frame())
        await self._empty.wait()


def reconnect_delay_ms(jitter_ms: int) -> int:
    """Spread reconnections so that N clients do not land on the other instances at once."""
    return random.randint(0, jitter_ms)  # noqa: S311  # nosec B311 # jitter, not security
