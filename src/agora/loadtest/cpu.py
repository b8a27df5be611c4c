"""Where the CPU went during a run: seconds per process group (each service, the gateways,
PostgreSQL, Redis, k6 itself), from the kernel's per-process counters before and after.

Only processes of this run count: the descendants of `agora up` and of the k6 and gateway
processes started here, and the database and Redis servers whose command line names this
run's workdir or URL port. On a shared machine everyone else's work is left out.
"""

from __future__ import annotations

import resource
from collections import defaultdict
from collections.abc import Iterable

import psutil  # the dev extras bring it (and types-psutil), like k6

Snapshot = dict[int, tuple[str, float]]


def group_of(process: psutil.Process) -> str:
    command = " ".join(process.cmdline())
    for service in ("auth", "posts", "realtime"):
        if f"serve {service}" in command:
            return service
    name = process.name()
    if "envoy" in name or "envoy" in command.split(" ", 1)[0]:
        return "gateway"
    if name.startswith("postgres") or "postgres" in command.split(" ", 1)[0]:
        return "postgresql"
    if "redis-server" in command:
        return "redis"
    if name == "k6" or command.split(" ", 1)[0].endswith("/k6"):
        return "k6"
    return "other"


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def processes_of(roots: Iterable[int], markers: Iterable[str]) -> dict[int, psutil.Process]:
    """Every process under ``roots`` and every process (and its children) whose command line
    contains one of ``markers``."""
    found: dict[int, psutil.Process] = {}
    for pid in roots:
        try:
            found.update({p.pid: p for p in _tree(psutil.Process(pid))})
        except psutil.NoSuchProcess:
            continue
    wanted = [m for m in markers if m]
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if any(marker in command for marker in wanted):
            found.update({p.pid: p for p in _tree(process)})
    return found


def snapshot(roots: Iterable[int], markers: Iterable[str]) -> Snapshot:
    """CPU seconds (user + system) of every process of :func:`processes_of`."""
    taken: Snapshot = {}
    for pid, process in processes_of(roots, markers).items():
        try:
            times = process.cpu_times()
            taken[pid] = (group_of(process), times.user + times.system)
        except psutil.Error:
            continue
    return taken


def cpu_seconds(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """Seconds per group between two snapshots (processes born in between count from 0)."""
    spent: dict[str, float] = defaultdict(float)
    for pid, (group, seconds) in after.items():
        previous = before.get(pid)
        spent[group] += seconds - (previous[1] if previous and previous[0] == group else 0.0)
    return dict(sorted(spent.items(), key=lambda item: -item[1]))


def children_seconds() -> float:
    """User + system CPU of this process's waited-for children so far: the k6 processes,
    whose own count the kernel keeps once they have ended."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
