"""Internal admin endpoints on each service's own port (like /metrics; the gateway routes only
``/api/v1/...`` and ``/ws``, never these): list the breakers, reset one.

Disabled (404) unless ``AGORA_ADMIN_TOKEN`` is set; the bearer token is compared in constant
time.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response

from agora.config import Settings
from agora.errors import ApiError, NotFound, Unauthenticated
from agora.resilience.registry import Breakers
from agora.security.strings import Text

ADMIN_PREFIX = "/admin"


def admin_routes(settings: Settings, breakers: Breakers) -> APIRouter:
    router = APIRouter(prefix=ADMIN_PREFIX, include_in_schema=False)
    token = settings.admin_token

    def authorize(request: Request) -> None:
        if token is None:
            raise NotFound("not found")
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        expected = token.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.encode(), expected):
            raise Unauthenticated("a valid admin token is required", code="invalid_admin_token")

    def describe(breakers: Breakers) -> list[dict[str, object]]:
        return [
            {
                "name": b.name,
                "state": b.state.name.lower().replace("_", "-"),
                "retry_after_s": round(b.retry_after_s, 3),
            }
            for b in breakers
        ]

    @router.get("/breakers")
    async def list_breakers(request: Request) -> dict[str, object]:
        authorize(request)
        return {"instance_id": settings.instance_id, "breakers": describe(breakers)}

    @router.post("/breakers/{name}/reset")
    async def reset_breaker(name: Text, request: Request) -> Response:
        authorize(request)
        try:
            breaker = breakers.get(name)
        except KeyError as exc:
            raise ApiError(str(exc.args[0]), code="unknown_breaker", status_code=404) from None
        breaker.reset()
        return Response(status_code=204)

    return router
