from __future__ import annotations

from collections.abc import Iterator

import pytest

from agora.services.realtime.hub import Hub


@pytest.fixture
def hub() -> Iterator[Hub]:
    """A hub that leaves no connection behind: the connections gauge is process-wide, and a
    later test reads it as a service's start-up value."""
    made = Hub()
    yield made
    for conn in list(made.connections()):
        made.unregister(conn)
