"""FastAPI dependencies for the caller's identity (bearer access tokens)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, Request
from starlette.types import Scope

from agora.errors import Unauthenticated
from agora.observability.context import bind_user
from agora.security.revocation import DeletedUsers
from agora.security.tokens import InvalidToken, Principal, TokenVerifier


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def query_token(scope: Scope) -> str | None:
    """A WebSocket upgrade's ``access_token`` query parameter (browsers cannot set headers on
    one). The first value, when repeated: the rate limiter and the route must read the same."""
    tokens = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("access_token")
    return tokens[0] if tokens else None


async def authenticate(
    verifier: TokenVerifier,
    token: str | None,
    deleted_users: DeletedUsers | None = None,
    scope: Scope | None = None,
) -> Principal:
    if token is None:
        raise Unauthenticated("a bearer access token is required")
    try:
        principal = await verifier.verify(token)
    except InvalidToken as exc:
        raise Unauthenticated(str(exc), code="invalid_token") from exc
    if deleted_users is not None and await deleted_users.is_deleted(principal.user_id, scope):
        raise Unauthenticated("the account of this token has been deleted", code="invalid_token")
    bind_user(principal.user_id)
    return principal


async def require_principal(request: Request) -> Principal:
    state = request.app.state
    return await authenticate(
        state.verifier,
        bearer_token(request.headers.get("authorization")),
        getattr(state, "deleted_users", None),
        request.scope,
    )


CurrentPrincipal = Annotated[Principal, Depends(require_principal)]
