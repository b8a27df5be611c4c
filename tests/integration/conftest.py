"""Fixtures the integration tests of several areas share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_servers import RedisProcess, redis_server


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of the test's own, for outages the shared Redis cannot stage."""
    server = redis_server(tmp_path / "redis")
    yield server
    server.kill()
