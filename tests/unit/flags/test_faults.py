"""The fault switch on its own: plans from flags, refusal where not allowed, each fault counted."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from agora.flags import FaultPlan, FaultSwitch, FeatureFlags
from agora.flags.faults import InjectedDatabaseFault, InjectedRedisFault


def faults_injected(dependency: str, kind: str) -> float:
    value = REGISTRY.get_sample_value(
        "agora_faults_injected_total", {"dependency": dependency, "kind": kind}
    )
    assert value is not None
    return value


def fault_flag(key: str, variant: dict[str, Any], percent: float = 100) -> dict[str, Any]:
    return {
        key: {
            "variants": {"off": {}, "on": variant},
            "defaultVariant": "off",
            "rollout": {"variant": "on", "percent": percent},
        }
    }


@pytest.fixture
def flags_path(tmp_path: Path) -> Path:
    path = tmp_path / "flags.json"
    path.write_text('{"flags": {}}')
    return path


@pytest.fixture
def flags(flags_path: Path) -> Iterator[FeatureFlags]:
    instance = FeatureFlags.from_file(str(flags_path))
    yield instance
    instance.close()


def set_flags(path: Path, flags: FeatureFlags, content: dict[str, Any]) -> None:
    path.write_text(json.dumps({"flags": content}))
    assert flags.reload()


@pytest.mark.parametrize(
    "value",
    [{"error_percent": 101}, {"latency_ms": -1}, {"error_percent": True}, {"errors": 5}],
)
def test_a_bad_plan_is_refused(value: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"must be a number|unknown field"):
        FaultPlan.parse(value)


def test_no_flag_means_no_fault(flags: FeatureFlags) -> None:
    switch = FaultSwitch(flags, instance_id="i-1", service="posts", allowed=True)
    assert switch.plan("postgres") is None
    assert switch.plan("redis") is None


async def test_errors_are_injected_counted_and_follow_the_flag(
    flags: FeatureFlags, flags_path: Path
) -> None:
    switch = FaultSwitch(flags, instance_id="i-1", service="posts", allowed=True)
    set_flags(flags_path, flags, fault_flag("fault-postgres", {"error_percent": 100}))
    before = faults_injected("postgres", "error")
    with pytest.raises(InjectedDatabaseFault):
        await switch.before_call("postgres")
    assert faults_injected("postgres", "error") == before + 1
    await switch.before_call("redis")  # the other dependency is untouched

    set_flags(flags_path, flags, fault_flag("fault-redis", {"error_percent": 100}))
    await switch.before_call("postgres")  # switched off by the reload
    with pytest.raises(InjectedRedisFault):
        await switch.before_call("redis")


async def test_latency_is_injected_for_its_share_of_calls(
    flags: FeatureFlags, flags_path: Path
) -> None:
    switch = FaultSwitch(flags, instance_id="i-1", service="posts", allowed=True)
    set_flags(
        flags_path, flags, fault_flag("fault-redis", {"latency_ms": 30, "latency_percent": 50})
    )
    before = faults_injected("redis", "latency")
    started = time.monotonic()
    for _ in range(40):
        await switch.before_call("redis")
    elapsed = time.monotonic() - started
    delayed = faults_injected("redis", "latency") - before
    assert 8 <= delayed <= 32  # binomial(40, 0.5): outside this about once in 10^4 runs
    assert elapsed >= delayed * 0.03


async def test_refused_where_not_allowed(flags: FeatureFlags, flags_path: Path) -> None:
    switch = FaultSwitch(flags, instance_id="i-1", service="posts", allowed=False)
    set_flags(flags_path, flags, fault_flag("fault-postgres", {"error_percent": 100}))
    assert switch.plan("postgres") is None
    await switch.before_call("postgres")


def test_a_rollout_picks_a_sticky_share_of_instances(flags: FeatureFlags, flags_path: Path) -> None:
    set_flags(flags_path, flags, fault_flag("fault-postgres", {"error_percent": 10}, percent=50))
    switches = [
        FaultSwitch(flags, instance_id=f"posts-{n}", service="posts", allowed=True)
        for n in range(60)
    ]
    faulty = {n for n, s in enumerate(switches) if s.plan("postgres") is not None}
    assert 15 <= len(faulty) <= 45
    set_flags(flags_path, flags, fault_flag("fault-postgres", {"error_percent": 10}, percent=80))
    assert faulty <= {n for n, s in enumerate(switches) if s.plan("postgres") is not None}
