"""Flame graphs of each service under load: py-spy records one instance of each service
for a while in the middle of the run and writes ``flame-<service>-<port>.svg``.

py-spy samples another process from outside (ptrace): the service runs unchanged, and
``--nonblocking`` keeps py-spy from pausing it at each sample, so the profile costs the
service next to nothing (py-spy's own CPU is on the machine's bill, and is named in the docs).
"""

from __future__ import annotations

import shutil
import subprocess  # nosec B404 # runs the py-spy binary, never a shell
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psutil  # the dev extras bring it (and types-psutil), like k6

from agora.loadtest.background import Background
from agora.loadtest.cpu import group_of, processes_of
from agora.loadtest.memory import label_of

SERVICES = ("auth", "posts", "realtime")
RATE_HZ = 50  # samples per second: enough for the top frames of a minute, cheap for py-spy


def py_spy_binary() -> str:
    """The py-spy of the dev extras (beside this interpreter), else PATH's."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise FileNotFoundError("py-spy is not installed: `pip install py-spy` (dev extras)")
    return found


def first_instances(processes: Iterable[psutil.Process]) -> dict[str, tuple[int, str]]:
    """Per service, the instance with the lowest port: its pid and its label."""
    chosen: dict[str, tuple[int, str]] = {}
    for process in processes:
        try:
            group = group_of(process)
        except psutil.Error:
            continue
        if group not in SERVICES:
            continue
        label = label_of(process, group)
        if group not in chosen or label < chosen[group][1]:
            chosen[group] = (process.pid, label)
    return dict(sorted(chosen.items()))


def record_argv(binary: str, pid: int, seconds: int, svg: Path) -> list[str]:
    return [
        binary,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(seconds),
        "--rate",
        str(RATE_HZ),
        "--nonblocking",
        "--format",
        "flamegraph",
        "--output",
        str(svg),
    ]


@dataclass
class FlameGraphs:
    """After ``after_s`` seconds, ``seconds`` of py-spy on one instance of each service, all
    at once (so the graphs show the same moment of the run)."""

    roots: Callable[[], list[int]]
    markers: list[str]
    out: Path
    after_s: float
    seconds: int
    written: list[Path] = field(default_factory=list)
    _worker: Background = field(default_factory=lambda: Background("flame-graphs"))

    def _record(self) -> None:
        if self._worker.stopping.wait(self.after_s):
            return
        binary = py_spy_binary()
        running = []
        for service, (pid, label) in first_instances(
            processes_of(self.roots(), self.markers).values()
        ).items():
            svg = self.out / f"flame-{label.replace(':', '-')}.svg"
            log = (self.out / f"py-spy-{service}.log").open("wb")
            running.append(
                (
                    svg,
                    log,
                    subprocess.Popen(  # noqa: S603  # nosec B603 # py-spy, fixed argv
                        record_argv(binary, pid, self.seconds, svg),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    ),
                )
            )
        for svg, log, process in running:
            process.wait()
            log.close()
            if svg.exists():
                self.written.append(svg)

    def start(self) -> None:
        if self.seconds > 0:
            self._worker.start(self._record)

    def stop(self) -> list[Path]:
        """Waits for a recording under way (it ends by its duration); skips one not begun."""
        self._worker.stop()
        return self.written
