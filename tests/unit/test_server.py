"""The service process's collector settings (agora.server.tune_collector)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from agora.config import Settings
from agora.server import tune_collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_collector")
def test_startup_objects_are_frozen_and_the_threshold_is_the_setting() -> None:
    _, middle, oldest = gc.get_threshold()
    survivor: object = type("Survivor", (), {})()  # an instance the collector tracks

    tune_collector(12_345)

    assert gc.get_threshold() == (12_345, middle, oldest)
    assert gc.get_freeze_count() > 0
    assert not any(obj is survivor for obj in gc.get_objects()), "frozen out of collections"


def test_the_default_and_the_lower_bound() -> None:
    assert Settings().gc_threshold == 50_000
    with pytest.raises(ValueError, match="gc_threshold"):
        Settings(gc_threshold=10)
