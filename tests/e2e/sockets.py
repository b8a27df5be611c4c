"""WebSocket helpers the end-to-end tests share."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed


async def close_code(ws: ClientConnection, *, within_s: float) -> int:
    """The code the server closes ``ws`` with, within ``within_s`` (frames may come first)."""
    async with asyncio.timeout(within_s):
        with pytest.raises(ConnectionClosed) as closed:  # noqa: PT012 - frames may come first
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code
