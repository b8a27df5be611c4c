"""The application-level fault switch: latency or errors injected into a share of the
PostgreSQL and Redis calls of this instance, for game days and for proving that the error
contract holds when a dependency misbehaves (docs/flags.md).

Driven by two object flags (``fault-postgres``, ``fault-redis``), evaluated with the
instance id as targeting key, so a percentage rollout picks a sticky share of the instances::

    "fault-postgres": {"variants": {"off": {}, "errors": {"error_percent": 50}},
                       "defaultVariant": "off",
                       "rollout": {"variant": "errors", "percent": 100}}

The flags are evaluated when the flags file changes, not per call: a call pays one dict
lookup while no fault is set. Off by default (no flag, no fault); refused in production
unless ``AGORA_FAULT_INJECTION=true``. Each injected fault is counted in
``agora_faults_injected_total{dependency,kind}`` and logged.

An injected error is a connection error at the call boundary (before the statement or command
is sent), so everything above it - breakers, retries, the 503 contract - runs as it would on
a real outage.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from redis.exceptions import ConnectionError as RedisConnectionError

from agora.flags.catalog import FAULT_POSTGRES, FAULT_REDIS, FlagSpec
from agora.flags.client import FeatureFlags
from agora.flags.metrics import FAULTS_INJECTED
from agora.observability.logging import get_logger

log = get_logger(__name__)

Dependency = Literal["postgres", "redis"]
_FLAGS: dict[Dependency, FlagSpec] = {"postgres": FAULT_POSTGRES, "redis": FAULT_REDIS}
_MAX_LATENCY_MS = 60_000.0


class InjectedDatabaseFault(ConnectionError):
    """An injected PostgreSQL failure. An OSError, so the database layer treats it as the
    server being unreachable (agora.db.errors.is_connectivity_error)."""


class InjectedRedisFault(RedisConnectionError):
    """An injected Redis failure, a redis-py ConnectionError like a lost server."""


@dataclass(frozen=True, slots=True)
class FaultPlan:
    error_percent: float = 0.0
    latency_ms: float = 0.0
    latency_percent: float = 100.0

    @property
    def active(self) -> bool:
        return self.error_percent > 0 or (self.latency_ms > 0 and self.latency_percent > 0)

    @classmethod
    def parse(cls, value: Mapping[str, Any]) -> FaultPlan:
        """``{"error_percent": 0-100, "latency_ms": 0-60000, "latency_percent": 0-100}``."""
        unknown = set(value) - {"error_percent", "latency_ms", "latency_percent"}
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
        numbers: dict[str, float] = {}
        for name, top in (
            ("error_percent", 100.0),
            ("latency_ms", _MAX_LATENCY_MS),
            ("latency_percent", 100.0),
        ):
            raw = value.get(name)
            if raw is None:
                continue
            if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 <= raw <= top:
                raise ValueError(f"{name} must be a number from 0 to {top:g}")
            numbers[name] = float(raw)
        return cls(**numbers)


class FaultSwitch:
    def __init__(
        self, flags: FeatureFlags, *, instance_id: str, service: str, allowed: bool
    ) -> None:
        self._flags = flags
        self._instance_id = instance_id
        self._service = service
        self.allowed = allowed
        self._plans: dict[str, FaultPlan] = {}
        flags.on_change(self.refresh)
        self.refresh()

    def plan(self, dependency: Dependency) -> FaultPlan | None:
        return self._plans.get(dependency)

    def refresh(self) -> None:
        plans: dict[str, FaultPlan] = {}
        for dependency, spec in _FLAGS.items():
            value = self._flags.object_value(
                spec, targeting_key=self._instance_id, service=self._service
            )
            plan, problem = _parse(value)
            if plan is None:
                log.error("fault flag ignored: invalid value", flag=spec.key, error=problem)
                continue
            if not plan.active:
                continue
            if not self.allowed:
                log.error(
                    "fault injection refused in production; set AGORA_FAULT_INJECTION=true "
                    "to allow it",
                    flag=spec.key,
                )
                continue
            plans[dependency] = plan
        if plans != self._plans:
            log.warning(
                "fault injection changed",
                service=self._service,
                instance_id=self._instance_id,
                faults={dep: vars_of(plan) for dep, plan in plans.items()},
            )
        self._plans = plans

    async def before_call(self, dependency: Dependency) -> None:
        """At the call boundary: maybe wait, maybe fail. Costs a dict lookup when no fault
        is set for ``dependency``."""
        plan = self._plans.get(dependency)
        if plan is None:
            return
        # Fault sampling, not a secret.
        roll = random.random() * 100  # noqa: S311  # nosec B311
        if plan.latency_ms > 0 and roll < plan.latency_percent:
            FAULTS_INJECTED.labels(dependency=dependency, kind="latency").inc()
            log.warning("fault injected", dependency=dependency, kind="latency", ms=plan.latency_ms)
            await asyncio.sleep(plan.latency_ms / 1000)
        roll = random.random() * 100  # noqa: S311  # nosec B311
        if roll < plan.error_percent:
            FAULTS_INJECTED.labels(dependency=dependency, kind="error").inc()
            log.warning("fault injected", dependency=dependency, kind="error")
            if dependency == "postgres":
                raise InjectedDatabaseFault("injected fault: PostgreSQL call failed")
            raise InjectedRedisFault("injected fault: Redis call failed")


def _parse(value: Mapping[str, Any]) -> tuple[FaultPlan | None, str]:
    try:
        return FaultPlan.parse(value), ""
    except ValueError as exc:
        return None, str(exc)


def vars_of(plan: FaultPlan) -> dict[str, float]:
    return {
        "error_percent": plan.error_percent,
        "latency_ms": plan.latency_ms,
        "latency_percent": plan.latency_percent,
    }


def redis_connection_class(base: type[Any], switch: FaultSwitch) -> type[Any]:
    """``base`` (redis-py's connection class for the URL's scheme) with the switch in front
    of every command sent: single commands, pipelines, scripts and pub/sub alike."""

    class FaultInjectingConnection(base):  # type: ignore[misc]
        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            await switch.before_call("redis")
            await super().send_packed_command(command, check_health)

    return FaultInjectingConnection
