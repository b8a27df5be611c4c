"""One daemon thread per harness sampler (memory, the gateways' timeline, flame graphs): it
runs beside k6 and is told to stop when k6 is done."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Background:
    name: str
    stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self, work: Callable[[], None]) -> None:
        self._thread = threading.Thread(target=work, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the work to end (it waits on ``stopping``) and wait until it has."""
        self.stopping.set()
        if self._thread is not None:
            self._thread.join()
