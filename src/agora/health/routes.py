"""The probe endpoints (Kubernetes semantics); each answers from memory, never from a dependency.

- ``/healthz``, ``/healthz/live``: liveness. 200 while the process can answer at all; no
  dependency is consulted, so a database outage never gets every instance restarted.
- ``/readyz``, ``/healthz/ready``: readiness. 200 (``ok`` or ``degraded``) or 503 (a hard check
  fails, or shutdown has begun). The ``/healthz/*`` forms carry the detail.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from fastapi.responses import Response

from agora.health.monitor import HealthMonitor

_ALIVE = orjson.dumps({"status": "ok"})


def _json(body: Any, status: int = 200) -> Response:
    # Probes must never be cached by anything between the prober and the instance.
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers={"cache-control": "no-store"},
    )


async def live() -> Response:
    return Response(_ALIVE, media_type="application/json", headers={"cache-control": "no-store"})


def health_router(monitor: HealthMonitor) -> APIRouter:
    """The probes of ``monitor``'s process (built with the app: probes answer before start-up
    completes and after shutdown begins)."""

    async def live_detail() -> Response:
        return _json({"status": "ok", **monitor.identity()})

    async def ready() -> Response:
        status, body = monitor.readiness(detail=False)
        return _json(body, status)

    async def ready_detail() -> Response:
        status, body = monitor.readiness(detail=True)
        return _json(body, status)

    router = APIRouter(include_in_schema=False)
    router.add_api_route("/healthz", live, methods=["GET"])
    router.add_api_route("/healthz/live", live_detail, methods=["GET"])
    router.add_api_route("/readyz", ready, methods=["GET"])
    router.add_api_route("/healthz/ready", ready_detail, methods=["GET"])
    return router
