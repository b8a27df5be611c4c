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
    """CPU seconds of every process of :func:`processes_of`: its own (user + system) and its
    ended children's (the kernel adds a child's to its parent's when the parent reaps it)."""
    taken: Snapshot = {}
    for pid, process in processes_of(roots, markers).items():
        try:
            times = process.cpu_times()
            own = times.user + times.system + times.children_user + times.children_system
            taken[pid] = (group_of(process), own)
        except psutil.Error:
            continue
    return taken


def cpu_seconds(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """Seconds per group between two snapshots: after minus before over every process of
    either. A process born in between counts from 0; one that ended in between (a PostgreSQL
    backend the pool recycled) counts in its parent's reaped children, less what it had used
    before the run. Counting only the processes still alive at the end missed those backends:
    the hour's soak credited PostgreSQL with 12 s."""
    spent: dict[str, float] = defaultdict(float)
    for group, seconds in after.values():
        spent[group] += seconds
    for group, seconds in before.values():
        spent[group] -= seconds
    return dict(sorted(spent.items(), key=lambda item: -item[1]))


def children_seconds() -> float:
    """User + system CPU of this process's waited-for children so far: the k6 processes,
    whose own count the kernel keeps once they have ended."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
