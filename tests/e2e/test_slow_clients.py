"""Slow and oversized requests against a real ``agora serve`` (uvicorn, httptools): the header
deadline and size cap of agora.http_protocol, the body deadline of the request limits. Before
the fix a silent or trickling connection was held for ever, a 64 KiB header block was served,
and a trickled body was read to its end (the request deadline starts after the body)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import orjson
import pytest

from tests.e2e.conftest import Cluster, ServiceProcess

pytestmark = pytest.mark.e2e

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.0
MAX_HEADER_BYTES = 4096
# Slack for a loaded 2-core machine; far below what "held for ever" would take.
SLACK_S = 3.0
LIMITS = {
    "AGORA_REQUEST_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
    "AGORA_REQUEST_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
    "AGORA_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
}


@pytest.fixture
def auth(cluster: Cluster) -> ServiceProcess:
    return cluster.start("auth", extra_env=LIMITS)


@contextlib.asynccontextmanager
async def connection(
    service: ServiceProcess,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def trickle(writer: asyncio.StreamWriter, byte: bytes, every_s: float = 0.2) -> None:
    """One byte at a time, for as long as the server takes it."""
    with contextlib.suppress(OSError):
        for _ in range(300):
            writer.write(byte)
            await writer.drain()
            await asyncio.sleep(every_s)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines if line)
    body = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, body


async def closed_within(reader: asyncio.StreamReader, timeout_s: float) -> float:
    """Seconds until the server closes the connection (EOF or reset), failing past timeout_s."""
    started = time.monotonic()
    with contextlib.suppress(ConnectionResetError):
        async with asyncio.timeout(timeout_s):
            while await reader.read(65536):
                pass
    return time.monotonic() - started


async def test_a_trickled_body_is_answered_408_and_closed(auth: ServiceProcess) -> None:
    async with connection(auth) as (reader, writer):
        writer.write(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        started = time.monotonic()
        trickler = asyncio.create_task(trickle(writer, b" "))
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S + SLACK_S):
                status, headers, body = await read_response(reader)
            took = time.monotonic() - started
            await closed_within(reader, SLACK_S)
        finally:
            trickler.cancel()
    assert status == 408
    assert headers["connection"] == "close"
    assert orjson.loads(body)["error"]["code"] == "request_timeout"
    assert BODY_TIMEOUT_S * 0.9 <= took < BODY_TIMEOUT_S + SLACK_S


async def test_a_silent_connection_is_closed_after_the_header_deadline(
    auth: ServiceProcess,
) -> None:
    async with connection(auth) as (reader, _):
        took = await closed_within(reader, HEADER_TIMEOUT_S + SLACK_S)
    assert took >= HEADER_TIMEOUT_S * 0.9


async def test_trickled_headers_are_cut_off_at_the_header_deadline(auth: ServiceProcess) -> None:
    async with connection(auth) as (reader, writer):
        writer.write(b"GET /healthz/live HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        trickler = asyncio.create_task(trickle(writer, b"a"))
        try:
            took = await closed_within(reader, HEADER_TIMEOUT_S + SLACK_S)
        finally:
            trickler.cancel()
    assert took >= HEADER_TIMEOUT_S * 0.9


@pytest.mark.parametrize("complete", [True, False], ids=["whole-block", "endless-block"])
async def test_an_oversized_header_block_is_refused_431_and_closed(
    auth: ServiceProcess, complete: bool
) -> None:
    block = b"GET /healthz/live HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * (2 * MAX_HEADER_BYTES)
    async with connection(auth) as (reader, writer):
        writer.write(block + (b"\r\n\r\n" if complete else b""))
        await writer.drain()
        async with asyncio.timeout(SLACK_S):
            status, headers, body = await read_response(reader)
        await closed_within(reader, SLACK_S)
    assert status == 431
    assert headers["connection"] == "close"
    assert orjson.loads(body)["error"]["code"] == "headers_too_large"


async def test_normal_requests_and_keep_alive_still_work(auth: ServiceProcess) -> None:
    body = orjson.dumps({"username": "nobody", "password": "not-the-password"})
    async with connection(auth) as (reader, writer):
        writer.write(
            b"GET /healthz/live HTTP/1.1\r\nHost: t\r\n" + b"X-Fill: " + b"a" * 2048 + b"\r\n\r\n"
        )
        assert (await read_response(reader))[0] == 200
        # Idle between requests for longer than the header deadline: that is the keep-alive
        # timeout's to bound, not the header deadline's.
        await asyncio.sleep(HEADER_TIMEOUT_S * 2)
        writer.write(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        status, _, answer = await read_response(reader)
        assert status == 401, answer
        writer.write(b"GET /healthz/live HTTP/1.1\r\nHost: t\r\n\r\n")
        assert (await read_response(reader))[0] == 200
