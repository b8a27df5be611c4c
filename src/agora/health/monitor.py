"""Background health checks; the probes only read their last results.

Every ``interval_s`` all checks run at once, each bounded by ``timeout_s``, so a probe answers
in microseconds whatever a dependency does: a hung PostgreSQL can never make Kubernetes' probe
time out (and a probe storm can never become a query storm). The first round runs during
start-up, before the server accepts connections, so the very first probe is already accurate.

Hard checks decide readiness (503 when one fails); soft checks only turn the status to
``degraded``: auth and posts work on PostgreSQL alone, so a Redis outage must not take every
instance of them out of the load balancer at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from agora.lifecycle import Lifecycle
from agora.observability.logging import get_logger
from agora.observability.metrics import DEPENDENCY_UP

log = get_logger(__name__)

Probe = Callable[[], Awaitable[None]]
CheckStatus = Literal["ok", "failing", "pending"]
Overall = Literal["ok", "degraded", "failing"]


@dataclass
class CheckState:
    """The last result of one check, as ``/healthz/ready`` shows it."""

    hard: bool
    status: CheckStatus = "pending"
    latency_ms: float | None = None
    checked_at: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "hard": self.hard,
            "latency_ms": self.latency_ms,
            "checked_at": self.checked_at,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }


@dataclass
class _Check:
    probe: Probe
    state: CheckState


@dataclass
class HealthMonitor:
    service: str
    instance_id: str
    version: str
    lifecycle: Lifecycle
    interval_s: float = 10.0
    timeout_s: float = 1.0
    _checks: dict[str, _Check] = field(default_factory=dict)

    def add_check(self, name: str, probe: Probe, *, hard: bool) -> None:
        self._checks[name] = _Check(probe, CheckState(hard=hard))

    async def run_checks(self) -> None:
        """One round: every check at once, each bounded by the timeout."""
        await asyncio.gather(*(self._run(name, check) for name, check in self._checks.items()))

    async def _run(self, name: str, check: _Check) -> None:
        started = time.perf_counter()
        error: str | None = None
        try:
            async with asyncio.timeout(self.timeout_s):
                await check.probe()
        except TimeoutError:
            error = f"no answer within {self.timeout_s:g}s"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        state = check.state
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        state.latency_ms = round((time.perf_counter() - started) * 1000, 2)
        state.checked_at = now
        previous = state.status
        if error is None:
            state.status = "ok"
        else:
            state.status = "failing"
            state.last_error = error
            state.last_error_at = now
        DEPENDENCY_UP.labels(name).set(1 if error is None else 0)
        if previous not in (state.status, "pending"):
            # Transitions only: a dependency that stays down must not flood the logs.
            level = log.info if error is None else log.warning
            level("health check changed", check=name, status=state.status, error=error)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run a first round now, then keep checking in the background until exit."""
        await self.run_checks()
        task = asyncio.create_task(self._loop(), name=f"{self.service}-health-checks")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.run_checks()

    def overall(self) -> Overall:
        if self.lifecycle.shutting_down:
            return "failing"
        states = [check.state for check in self._checks.values()]
        if any(s.hard and s.status != "ok" for s in states):
            return "failing"
        if any(s.status != "ok" for s in states):
            return "degraded"
        return "ok"

    def identity(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "instance_id": self.instance_id,
            "version": self.version,
            "uptime_s": round(self.lifecycle.uptime_s, 1),
        }

    def readiness(self, *, detail: bool) -> tuple[int, dict[str, Any]]:
        """``(status code, body)``: 503 when a hard check fails or shutdown has begun."""
        status = self.overall()
        checks: dict[str, Any] = {
            name: (check.state.as_dict() if detail else check.state.status)
            for name, check in self._checks.items()
        }
        body: dict[str, Any] = {"status": status, "checks": checks}
        if self.lifecycle.shutting_down:
            body["shutting_down"] = True
        failing = [n for n, c in self._checks.items() if c.state.hard and c.state.status != "ok"]
        if failing:
            body["failing"] = failing
        body.update(self.identity())
        return (503 if status == "failing" else 200), body
