"""HealthMonitor semantics: hard vs soft checks, bounded checks, probes answered from memory."""

from __future__ import annotations

import asyncio
import time

import pytest

from agora.health import HealthMonitor
from agora.lifecycle import Lifecycle


def monitor(timeout_s: float = 0.2) -> HealthMonitor:
    return HealthMonitor(
        service="posts",
        instance_id="i-1",
        version="0.1.0",
        lifecycle=Lifecycle(),
        interval_s=0.05,
        timeout_s=timeout_s,
    )


async def ok() -> None:
    return None


async def broken() -> None:
    raise ConnectionRefusedError("connection refused")


async def hung() -> None:
    await asyncio.sleep(3600)


async def test_a_soft_failure_degrades_and_a_hard_one_fails() -> None:
    health = monitor()
    health.add_check("postgres", ok, hard=True)
    health.add_check("redis", broken, hard=False)
    await health.run_checks()
    status, body = health.readiness(detail=True)
    assert (status, body["status"]) == (200, "degraded")
    assert body["checks"]["redis"]["last_error"] == "ConnectionRefusedError: connection refused"
    assert "failing" not in body

    health.add_check("postgres", broken, hard=True)
    await health.run_checks()
    status, body = health.readiness(detail=False)
    assert (status, body["status"], body["failing"]) == (503, "failing", ["postgres"])
    assert body["checks"] == {"postgres": "failing", "redis": "failing"}


async def test_a_hung_check_is_cut_off_and_the_probe_never_waits_for_it() -> None:
    health = monitor(timeout_s=0.2)
    health.add_check("postgres", hung, hard=True)
    async with health.running():
        started = time.perf_counter()
        for _ in range(100):
            status, body = health.readiness(detail=True)
        assert time.perf_counter() - started < 0.5  # from memory, not from the dependency
        assert status == 503
        assert body["checks"]["postgres"]["last_error"] == "no answer within 0.2s"


async def test_checks_keep_running_in_the_background_and_recover() -> None:
    health = monitor()
    healthy = False

    async def flaky() -> None:
        if not healthy:
            raise OSError("down")

    health.add_check("redis", flaky, hard=True)
    async with health.running():
        assert health.overall() == "failing"
        healthy = True
        async with asyncio.timeout(5):
            while True:
                if health.overall() == "ok":
                    break
                await asyncio.sleep(0.01)
    _, body = health.readiness(detail=True)
    assert body["checks"]["redis"]["last_error"] == "OSError: down"  # kept for the operator


@pytest.mark.parametrize("hard", [True, False])
async def test_shutdown_fails_readiness_whatever_the_checks_say(hard: bool) -> None:
    health = monitor()
    health.add_check("postgres", ok, hard=hard)
    await health.run_checks()
    health.lifecycle.begin_shutdown()
    status, body = health.readiness(detail=False)
    assert (status, body["status"], body["shutting_down"]) == (503, "failing", True)


async def test_lifecycle_drain_is_bounded() -> None:
    lifecycle = Lifecycle()
    finished: list[str] = []

    async def quick() -> None:
        finished.append("quick")

    lifecycle.on_drain(quick)
    assert await lifecycle.drain(1.0) is True
    lifecycle.on_drain(hung)
    assert await lifecycle.drain(0.1) is False
    assert finished == ["quick", "quick"]
