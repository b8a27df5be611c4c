"""FastAPI dependencies for the caller's identity, read from what the identity step
(``agora.security.identity``) put in the scope: the token is verified once per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from agora.errors import Unauthenticated
from agora.observability.context import bind_user
from agora.runtime import runtime_of
from agora.security.identity import Identity, identity_of
from agora.security.revocation import DeletedUsers, RevokedSessions
from agora.security.tokens import InvalidToken, Principal, TokenVerifier


async def authenticate(
    identity: Identity,
    verifier: TokenVerifier,
    deleted_users: DeletedUsers,
    revoked_sessions: RevokedSessions,
) -> Principal:
    """The principal of ``identity``, or the 401 that says why there is none. When the
    identity step's verifier could not decide (say, a key store that could not reload), the
    route asks once more: what it then raises is the route's answer (a 503 or 500)."""
    token = identity.token
    if token is None:
        raise Unauthenticated("a bearer access token is required")
    principal = identity.principal
    if identity.undecided is not None:
        try:
            principal = await verifier.verify(token)
        except InvalidToken as exc:
            raise Unauthenticated(str(exc), code="invalid_token") from exc
    if principal is None:
        raise Unauthenticated(identity.invalid_reason or "invalid token", code="invalid_token")
    if await deleted_users.is_deleted(principal.user_id, prefetched=identity.deleted):
        raise Unauthenticated("the account of this token has been deleted", code="invalid_token")
    if await revoked_sessions.is_revoked(principal.session_id, prefetched=identity.session_ended):
        raise Unauthenticated(
            "the session of this token has ended; log in again", code="session_ended"
        )
    bind_user(principal.user_id)
    return principal


async def require_principal(connection: HTTPConnection) -> Principal:
    runtime = runtime_of(connection)
    infra = runtime.infra
    return await authenticate(
        identity_of(connection.scope), runtime.verifier, infra.deleted_users, infra.revoked_sessions
    )


CurrentPrincipal = Annotated[Principal, Depends(require_principal)]
