"""Heap snapshots of a live instance, for memory growth (docs/runbook.md, *Memory growth*).

``kill -USR2 PID`` (``docker kill --signal=USR2 CONTAINER``) the first time starts tracemalloc
(25 frames per allocation; from then on allocations cost more, so do it on one instance);
each further USR2 writes a snapshot to ``AGORA_HEAP_SNAPSHOT_DIR`` (``/tmp``, the image's
writable tmpfs) and logs the ten biggest allocation sites. Two snapshots a few minutes apart
show what grows::

    python -m agora.observability.heap compare OLD.tracemalloc NEW.tracemalloc

A snapshot blocks the event loop while it is taken (hundreds of milliseconds on a large heap):
take it on an instance that can afford it, or out of rotation.
"""

from __future__ import annotations

import os
import pickle  # nosec B403 # only to name its error: tracemalloc's own file format
import signal
import sys
import time
import tracemalloc
from pathlib import Path
from types import FrameType

from agora.observability.logging import get_logger

log = get_logger(__name__)

FRAMES = 25


def take_snapshot(directory: Path, service: str) -> Path:
    snapshot = tracemalloc.take_snapshot()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = directory / f"heap-{service}-{os.getpid()}-{stamp}.tracemalloc"
    snapshot.dump(str(path))
    current, peak = tracemalloc.get_traced_memory()
    top = [str(stat) for stat in snapshot.statistics("lineno")[:10]]
    log.warning(
        "heap snapshot written",
        path=str(path),
        traced_mb=round(current / 2**20, 1),
        peak_mb=round(peak / 2**20, 1),
        top=top,
    )
    return path


def install(service: str, directory: Path) -> None:
    """SIGUSR2: start tracing, then one snapshot per signal."""

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(FRAMES)
            log.warning("tracemalloc started; send SIGUSR2 again for a heap snapshot")
            return
        try:
            take_snapshot(directory, service)
        except OSError as exc:
            problem = str(exc)
        else:
            return
        log.error("heap snapshot not written", directory=str(directory), error=problem)

    signal.signal(signal.SIGUSR2, on_signal)


def compare(old: Path, new: Path, *, limit: int = 15) -> list[str]:
    """The allocation sites that grew most from ``old`` to ``new``. tracemalloc's files are
    pickles: compare only snapshots you took yourself."""
    before = tracemalloc.Snapshot.load(str(old))
    after = tracemalloc.Snapshot.load(str(new))
    return [str(stat) for stat in after.compare_to(before, "lineno")[:limit]]


def main(argv: list[str]) -> int:
    if argv[:1] != ["compare"] or len(argv[1:]) != len(("OLD", "NEW")):
        sys.stderr.write("usage: python -m agora.observability.heap compare OLD NEW\n")
        return 2
    try:
        lines = compare(Path(argv[1]), Path(argv[2]))
    except (OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        sys.stderr.write(f"cannot read the snapshots: {exc}\n")
        return 1
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
