"""The run over time, from the gateways' own counters: users online, req/s, 5xx and 4xx
(429s included) and the p95 of each service's upstream time, every few seconds; and the
breaking point (the first window where the p95 crosses 200 ms or errors cross 0.1%).

k6's summary has one figure per run, so it cannot say at how many users a ramp broke. Envoy
keeps counters and, per stats flush (5 s), interval percentiles of every cluster's upstream
request time; polling its admin endpoint costs one small request per gateway per window,
nothing like a per-request output from k6 on two cores. Users online = WebSocket upgrades
active (each user holds one socket). The p95 is the gateway's view: a request's time from
the gateway to the service and back, without the client's TLS hop (on loopback, small).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from agora.loadtest.background import Background

P95_LIMIT_MS = 200.0
ERROR_LIMIT = 0.001
SERVICES = ("auth", "posts")  # realtime's HTTP routes are few; its sockets are counted apart
_FILTER = (
    r"^(http\.https\.downstream_(rq_completed|rq_5xx|rq_4xx|cx_upgrades_active)"
    r"|cluster\.(auth|posts)\.upstream_rq_time)$"
)


@dataclass(frozen=True, slots=True)
class Reading:
    """One poll of one gateway: counters so far, sockets open, each cluster's interval p95."""

    completed: float
    errors: float  # 5xx
    client_errors: float  # 4xx, the 429s among them
    sockets: float
    p95_ms: dict[str, float | None]


def parse(stats: dict[str, Any]) -> Reading:
    """A reading from Envoy's ``/stats?format=json`` answer (filtered by :data:`_FILTER`)."""
    values: dict[str, float] = {}
    p95: dict[str, float | None] = {}
    for stat in stats.get("stats", []):
        if "histograms" in stat:
            histograms = stat["histograms"]
            index = histograms["supported_quantiles"].index(95.0)
            for computed in histograms["computed_quantiles"]:
                service = computed["name"].split(".")[1]
                p95[service] = computed["values"][index]["interval"]
        else:
            values[stat["name"].rsplit(".", 1)[1]] = float(stat["value"])
    return Reading(
        completed=values.get("downstream_rq_completed", 0.0),
        errors=values.get("downstream_rq_5xx", 0.0),
        client_errors=values.get("downstream_rq_4xx", 0.0),
        sockets=values.get("downstream_cx_upgrades_active", 0.0),
        p95_ms=p95,
    )


@dataclass(frozen=True, slots=True)
class Window:
    t_s: float  # since the first poll
    users: int  # WebSockets open through every gateway
    requests_per_s: float
    error_rate: float  # 5xx / completed in the window
    client_error_rate: float  # 4xx / completed (429s are among them)
    p95_ms: dict[str, float | None]  # per service, the worst gateway's

    @property
    def broken(self) -> bool:
        late = any(v is not None and v > P95_LIMIT_MS for v in self.p95_ms.values())
        return late or self.error_rate > ERROR_LIMIT


def window(t_s: float, seconds: float, before: list[Reading], after: list[Reading]) -> Window:
    completed = sum(a.completed - b.completed for a, b in zip(after, before, strict=True))
    errors = sum(a.errors - b.errors for a, b in zip(after, before, strict=True))
    client = sum(a.client_errors - b.client_errors for a, b in zip(after, before, strict=True))
    p95: dict[str, float | None] = {}
    for service in SERVICES:
        seen = [r.p95_ms.get(service) for r in after]
        known = [v for v in seen if v is not None]
        p95[service] = round(max(known), 1) if known else None
    return Window(
        t_s=round(t_s, 1),
        users=int(sum(r.sockets for r in after)),
        requests_per_s=round(completed / seconds, 1),
        error_rate=errors / completed if completed else 0.0,
        client_error_rate=client / completed if completed else 0.0,
        p95_ms=p95,
    )


def breaking_point(timeline: list[Window]) -> Window | None:
    """The first window past the limits that the next one confirms (one bad window on a
    shared machine is noise, two in a row a trend)."""
    for current, following in itertools.pairwise(timeline):
        if current.broken and following.broken:
            return current
    return None


@dataclass
class GatewayTimeline:
    """Polls every gateway's admin endpoint every ``interval_s`` from ``start()`` to ``stop()``."""

    admin_urls: list[str]
    interval_s: float = 10.0
    windows: list[Window] = field(default_factory=list)
    _worker: Background = field(default_factory=lambda: Background("gateway-timeline"))

    def _read(self, client: httpx.Client) -> list[Reading] | None:
        try:
            return [
                parse(
                    client.get(f"{url}/stats", params={"format": "json", "filter": _FILTER}).json()
                )
                for url in self.admin_urls
            ]
        except (httpx.HTTPError, ValueError):
            return None  # a gateway busy or restarting: this window is skipped, not invented

    def _loop(self) -> None:
        started = time.monotonic()
        with httpx.Client(timeout=5) as client:
            before, at = self._read(client), time.monotonic()
            while not self._worker.stopping.wait(self.interval_s):
                after, now = self._read(client), time.monotonic()
                if before is not None and after is not None:
                    self.windows.append(window(now - started, now - at, before, after))
                before, at = after, now

    def start(self) -> None:
        self._worker.start(self._loop)

    def stop(self) -> dict[str, Any]:
        self._worker.stop()
        broken = breaking_point(self.windows)
        return {
            "window_s": self.interval_s,
            "windows": [asdict(w) for w in self.windows],
            "breaking_point": None if broken is None else asdict(broken),
            "peak_requests_per_s": max((w.requests_per_s for w in self.windows), default=0.0),
            "peak_users": max((w.users for w in self.windows), default=0),
        }
