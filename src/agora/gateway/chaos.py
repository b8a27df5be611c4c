"""The gateway's fault-injection switch: Envoy's fault filter driven through its admin runtime.

Every route of the rendered configuration carries its own runtime keys
(``agora.fault.<route>.delay_percent|delay_ms|abort_percent|abort_status``), all 0 % by
default. Switching a fault is one ``POST /runtime_modify`` on the admin port (loopback only);
Envoy counts every injected fault (``http.<listener>.fault.delays_injected`` /
``aborts_injected``, scraped by Prometheus from ``/stats/prometheus``) and flags each request
``DI``/``FI`` in its access log. Every switch is logged here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Literal

import httpx

from agora.config import ConfigError, Settings
from agora.observability.logging import get_logger

# The routes the template renders (route names in the access log and in the runtime keys).
ROUTES = (
    "auth",
    "auth-write",
    "posts",
    "posts-write",
    "realtime",
    "realtime-write",
    "realtime-ws",
)
FaultKind = Literal["delay", "abort"]
log = get_logger("agora.gateway.chaos")


@dataclass(frozen=True, slots=True)
class Fault:
    route: str
    kind: FaultKind
    percent: int
    # Delay in milliseconds, or the HTTP status of an abort.
    value: int

    def runtime(self) -> dict[str, str]:
        prefix = f"agora.fault.{self.route}"
        if self.kind == "delay":
            return {
                f"{prefix}.delay_percent": str(self.percent),
                f"{prefix}.delay_ms": str(self.value),
            }
        return {
            f"{prefix}.abort_percent": str(self.percent),
            f"{prefix}.abort_status": str(self.value),
        }


def check_allowed(settings: Settings) -> None:
    """Production refuses unless the operator enabled the switch explicitly."""
    if not settings.effective_gateway_fault_injection:
        raise ConfigError(
            "fault injection is off in production: set AGORA_GATEWAY_FAULT_INJECTION=true "
            "(and re-render the gateway) to run a game day against this deployment"
        )


def routes_for(names: list[str]) -> list[str]:
    chosen = list(ROUTES) if "all" in names or not names else names
    unknown = [n for n in chosen if n not in ROUTES]
    if unknown:
        raise ConfigError(
            f"unknown route {', '.join(unknown)}: choose from {', '.join(ROUTES)} or all"
        )
    return chosen


MAX_DELAY_MS = 60_000
MIN_STATUS, MAX_STATUS = 200, 599


def validate(fault: Fault) -> None:
    if not 0 <= fault.percent <= 100:  # noqa: PLR2004  # a percentage
        raise ConfigError(f"--percent {fault.percent}: expected 0 to 100")
    if fault.kind == "delay" and not 1 <= fault.value <= MAX_DELAY_MS:
        raise ConfigError(f"--ms {fault.value}: expected 1 to 60000 milliseconds")
    if fault.kind == "abort" and not MIN_STATUS <= fault.value <= MAX_STATUS:
        raise ConfigError(f"--status {fault.value}: expected an HTTP status 200-599")


class Chaos:
    """One gateway's admin interface (``http://127.0.0.1:<admin port>``)."""

    def __init__(self, admin_url: str, timeout: float = 5.0) -> None:
        self.admin_url = admin_url.rstrip("/")
        self._client = httpx.Client(base_url=self.admin_url, timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Chaos:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _modify(self, values: dict[str, str]) -> None:
        try:
            response = self._client.post("/runtime_modify", params=values)
        except httpx.HTTPError as exc:
            raise ConfigError(
                f"gateway admin {self.admin_url} not reachable ({exc}): is the gateway running "
                "(agora up) and AGORA_GATEWAY_ADMIN_PORT its admin port?"
            ) from None
        if response.status_code != HTTPStatus.OK:
            raise ConfigError(f"gateway refused runtime_modify: {response.text.strip()}")

    def has_fault_filter(self) -> bool:
        """The filter's counters exist from start-up exactly when it is configured."""
        text = self._client.get("/stats", params={"filter": r"\.fault\."}).text
        return ".fault." in text

    def set(self, fault: Fault) -> None:
        validate(fault)
        if not self.has_fault_filter():
            raise ConfigError(
                "this gateway has no fault filter (production without "
                "AGORA_GATEWAY_FAULT_INJECTION=true): nothing to switch"
            )
        self._modify(fault.runtime())
        log.warning(
            "gateway fault injection on",
            route=fault.route,
            kind=fault.kind,
            percent=fault.percent,
            value=fault.value,
        )

    def clear(self, routes: list[str]) -> None:
        values = {}
        for route in routes:
            values[f"agora.fault.{route}.delay_percent"] = "0"
            values[f"agora.fault.{route}.abort_percent"] = "0"
        self._modify(values)
        log.warning("gateway fault injection off", routes=routes)

    def active(self) -> dict[str, str]:
        """The fault runtime keys set now (a percentage above 0 is a fault switched on)."""
        data = self._client.get("/runtime", params={"format": "json"}).json()
        entries: dict[str, dict[str, str]] = data.get("entries", {})
        return {
            key: entry.get("final_value", "")
            for key, entry in sorted(entries.items())
            if key.startswith("agora.fault.")
        }

    def injected(self) -> dict[str, int]:
        """Envoy's fault counters (every listener), e.g. ``http.http.fault.aborts_injected``."""
        text = self._client.get("/stats", params={"filter": r"\.fault\."}).text
        counts = {}
        for line in text.splitlines():
            name, _, value = line.partition(": ")
            if value.strip().isdigit():
                counts[name] = int(value)
        return counts
