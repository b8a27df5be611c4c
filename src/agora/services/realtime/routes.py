"""HTTP and WebSocket routes of the realtime service (thin: authenticate, call the service)."""

from __future__ import annotations

from fastapi import APIRouter, Request, WebSocket

from agora.errors import ApiError, NotFound
from agora.observability.logging import get_logger
from agora.openapi_errors import error_responses
from agora.runtime import parts_of, runtime_of
from agora.security.dependencies import CurrentPrincipal, authenticate
from agora.security.identity import IdentityMiddleware, identity_of
from agora.security.strings import Text
from agora.security.tokens import Principal
from agora.services.realtime import service
from agora.services.realtime.parts import RealtimeParts
from agora.services.realtime.schemas import PresencePublic

log = get_logger(__name__)

router = APIRouter()

POLICY_VIOLATION = service.POLICY_VIOLATION

# OpenAPI has no way to describe a WebSocket: its contract is told in the description.
WEBSOCKET_DESCRIPTION = """\
**`GET /ws` (WebSocket upgrade).** Not an operation of this description: a plain HTTP request to
it is answered 404. The access token goes in `Authorization: Bearer …` or the `access_token`
query parameter; a missing, invalid or revoked token, or two tokens at once, refuses the
handshake (HTTP 403, no socket). Past the rate limit the socket is accepted, sent an `error`
frame `rate_limited` with `retry_after_ms`, and closed with 1013. The server sends JSON text
frames `{"type": …}`: `post.created`, `notification`, `server.draining`
(`reconnect_after_ms`), `pong`, `auth.ok` (`valid_until`) and `error` (`code`:
`malformed_message`, `unknown_type`, `rate_limited`, `invalid_token`). The client may send
`{"type": "ping"}` and `{"type": "auth", "access_token": …}` (moves the socket's deadline to
the new token's expiry). Frames are at most 64 KiB by default
(`AGORA_WS_MAX_MESSAGE_BYTES`). Close codes: 1008 policy violation (message rate limit, account
deleted), 1009 frame too big, 1012 service restart, 1013 slow consumer, 4001 session ended,
4002 access token expired (re-authenticate in-band before it does)."""


@router.websocket("/ws")
async def events_socket(websocket: WebSocket) -> None:
    """Push channel. The token is checked before the upgrade: a refused client gets HTTP 403
    and never an open socket. The identity step verified the token (JWKS cache, no database
    call); this reads its outcome."""
    runtime = runtime_of(websocket)
    parts = parts_of(websocket, RealtimeParts)
    try:
        principal = await authenticate(
            identity_of(websocket.scope),
            runtime.verifier,
            runtime.infra.deleted_users,
            runtime.infra.revoked_sessions,
        )
    except ApiError as exc:
        log.debug("websocket refused", reason=exc.message)
        await websocket.close(code=POLICY_VIOLATION)
        return
    user_id = service.canonical_user_id(principal.user_id)
    if user_id is None:
        await websocket.close(code=POLICY_VIOLATION)
        return
    infra = runtime.infra

    async def reauthenticate(token: str) -> Principal:
        identity = await IdentityMiddleware.identify_with(runtime.verifier, token)
        return await authenticate(
            identity, runtime.verifier, infra.deleted_users, infra.revoked_sessions
        )

    await websocket.accept()
    await service.run_session(
        websocket,
        user_id=user_id,
        hub=parts.hub,
        presence=parts.presence,
        max_message_bytes=infra.settings.ws_max_message_bytes,
        limits=parts.ws_limits,
        principal=principal,
        valid_until=runtime.verifier.valid_until,
        reauthenticate=reauthenticate,
    )


@router.get(
    "/api/v1/realtime/presence/{user_id}",
    responses=error_responses(
        404, descriptions={404: "No such user, or one whose presence the caller may not see"}
    ),
)
async def get_presence(
    user_id: Text, request: Request, principal: CurrentPrincipal
) -> PresencePublic:
    """Whether the user is online, on any instance. Visible to the user themself and to the
    accounts the user follows; to anyone else the answer is 404, exactly as for an id that
    names no one, so it does not even confirm the account exists."""
    canonical = service.canonical_user_id(user_id)
    viewer = service.canonical_user_id(principal.user_id)
    runtime = runtime_of(request)
    if (
        canonical is None
        or viewer is None
        or not await service.may_see_presence(runtime.infra.db, viewer_id=viewer, user_id=canonical)
    ):
        raise NotFound("no such user")
    presence = parts_of(request, RealtimeParts).presence
    online = await service.user_presence(presence, user_id=canonical)
    return PresencePublic(user_id=canonical, online=online)
