"""The container's health check: ``python3 -m agora.healthcheck`` (no curl in the image).

Liveness (``/healthz``) by default: a dependency outage must not make an orchestrator restart
every container at once. ``--ready`` asks readiness (``/readyz``) instead, for plain Docker and
Compose, which restart nothing on "unhealthy" and only use it to order start-up.
The port is the one the container's main process serves, read from its command line
(``agora serve SERVICE [--port P]``), so one image needs no per-service setting.
Deliberately stdlib-only and without importing the settings: it runs every few seconds.
"""

from __future__ import annotations

import sys
import urllib.request
from http import HTTPStatus
from pathlib import Path

# The contract ports (agora.config.DEFAULT_PORTS), repeated to keep this probe import-free.
SERVICE_PORTS = {"auth": 8080, "posts": 8081, "realtime": 8082}


def served_port(argv: list[str]) -> int | None:
    """The port of ``agora serve SERVICE [--port P | --port=P]``; None for any other command."""
    if "serve" not in argv:
        return None
    rest = argv[argv.index("serve") + 1 :]
    port = SERVICE_PORTS.get(rest[0]) if rest else None
    for position, arg in enumerate(rest):
        if arg == "--port" and position + 1 < len(rest):
            port = int(rest[position + 1])
        elif arg.startswith("--port="):
            port = int(arg.split("=", 1)[1])
    return port


def main() -> int:
    argv = Path("/proc/1/cmdline").read_bytes().decode().split("\0")
    port = served_port(argv)
    if port is None:
        print("healthcheck: the container's main process is not `agora serve`", file=sys.stderr)
        return 1
    path = "/readyz" if "--ready" in sys.argv[1:] else "/healthz"
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # nosec B310 # fixed loopback http URL
            return 0 if response.status == HTTPStatus.OK else 1
    except OSError as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
