"""`agora up` watches its embedded PostgreSQL and Redis as it watches the services: one that
dies is restarted on the same address (the services' URLs stay valid), with a backoff, and
both the death and the return are announced."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from agora.devstack.embedded import EmbeddedServers


@dataclass
class _Watched:
    name: str
    down_since: float | None = None
    attempts: int = 0
    next_attempt_at: float = 0.0


@dataclass
class EmbeddedWatch:
    embedded: EmbeddedServers
    _watched: dict[str, _Watched] = field(default_factory=dict)

    def check(self) -> None:
        """One round: called from the supervisor's loop, every half second."""
        now = time.monotonic()
        for name in self.embedded.started():
            watched = self._watched.setdefault(name, _Watched(name))
            if watched.down_since is None:
                if self.embedded.alive(name):
                    continue
                watched.down_since = now
                watched.next_attempt_at = now
                _say(f"agora: embedded {name} ({self.embedded.address(name)}) died; restarting")
            if now < watched.next_attempt_at:
                continue
            watched.attempts += 1
            try:
                self.embedded.restart(name)
            except Exception as exc:
                delay = min(30.0, 2.0 ** min(watched.attempts, 5))
                watched.next_attempt_at = now + delay
                _say(
                    f"agora: embedded {name} did not restart ({exc}); trying again in {delay:.0f}s"
                )
                continue
            _say(
                f"agora: embedded {name} is back on {self.embedded.address(name)} "
                f"(down {time.monotonic() - watched.down_since:.1f}s, restart {watched.attempts})"
            )
            watched.down_since = None


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
