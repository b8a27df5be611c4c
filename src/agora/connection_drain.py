"""Which of a draining server's connections may be closed, and when.

uvicorn's ``connection.shutdown()`` closes at once every HTTP connection without a request in
progress. A connection accepted a moment before the listener closed has usually not been read
yet: its request sits in the socket's receive buffer, or is still on its way. Closing it drops
a request the client has already sent, and nothing counts it (issue 16: a fresh instance with
200 requests arriving, SIGTERM 10 ms later: 200 lost, the drain logged ``clean=True``). So a
connection is closed only when it is truly idle:

- a request in progress (or pipelined behind one): told to close after its response (asked
  again on every pass, since a new request on the connection starts a new cycle);
- bytes waiting in its receive buffer, or a request whose headers are half read: left open;
  the event loop parses it next and it becomes the case above;
- a fresh connection that has sent nothing yet: left open for ``first_request_grace_s`` (a
  client that has just connected sends its request within milliseconds), then closed;
- idle after a response (keep-alive) with nothing waiting: closed now.

Other protocols (WebSockets) get uvicorn's ``shutdown()`` once, as before.

Before that, the listener itself: closing a listening socket resets every connection still in
its accept queue (the client has sent its request and gets ECONNRESET). The queue fills
whenever the process lags (CPU-starved, a GC pause, a burst), so the server closes it only once
the kernel reports it empty (``accept_queue_length``), within a bound.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
import time
from typing import Any

_INT = struct.Struct("i")
# struct tcp_info's head: eight u8 fields, then u32 rto, ato, snd_mss, rcv_mss, unacked,
# sacked. For a listening socket Linux reports the accept queue's length in tcpi_unacked.
_TCP_INFO_HEAD = struct.Struct("8B6I")
_TCPI_UNACKED = 12


def accept_queue_length(sockets: list[Any]) -> int:
    """Connections the kernel has completed that nobody has accepted yet, over ``sockets``."""
    queued = 0
    for sock in sockets:
        try:
            raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_HEAD.size)
            queued += _TCP_INFO_HEAD.unpack(raw)[_TCPI_UNACKED]
        except (OSError, struct.error, ValueError):
            continue  # not TCP (a Unix socket) or closed: nothing to wait for
    return queued


def unread_bytes(transport: Any) -> int:
    """Bytes the kernel holds for this connection that the event loop has not read yet."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    try:
        fd = sock.fileno() if sock is not None else -1
        if fd < 0:
            return 0
        count: int = _INT.unpack(fcntl.ioctl(fd, termios.FIONREAD, bytes(_INT.size)))[0]
    except (OSError, ValueError):
        return 0  # closed meanwhile: nothing left to read
    return count


class ConnectionDrain:
    def __init__(self, *, first_request_grace_s: float) -> None:
        self.grace_until = time.monotonic() + first_request_grace_s
        self.closed_idle = 0
        self.closed_silent = 0
        self._told: set[int] = set()  # WebSockets told to go, HTTP connections closed

    def step(self, connections: list[Any]) -> None:
        """One pass over the server's connections; safe to repeat."""
        now = time.monotonic()
        for connection in connections:
            if id(connection) in self._told and hasattr(connection, "cycle"):
                continue  # closed; uvicorn drops it from the set on the next loop turn
            if not hasattr(connection, "cycle"):  # not an HTTP connection
                if id(connection) not in self._told:
                    self._told.add(id(connection))
                    connection.shutdown()
                continue
            cycle = connection.cycle
            if (cycle is not None and not cycle.response_complete) or connection.pipeline:
                connection.shutdown()  # busy: close after the response
                continue
            scope = getattr(connection, "scope", None)
            arriving = scope is not None and (cycle is None or cycle.scope is not scope)
            if unread_bytes(connection.transport) > 0 or (
                (arriving or cycle is None) and now < self.grace_until
            ):
                continue  # a request is here or on its way: let the loop read it
            if cycle is None or arriving:
                self.closed_silent += 1  # no complete request within the grace
            else:
                self.closed_idle += 1
            self._told.add(id(connection))
            connection.shutdown()
