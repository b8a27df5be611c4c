"""HTTP routes of the auth service: parse, call the service, shape the response."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from agora.config import Settings
from agora.errors import Unauthenticated
from agora.openapi_errors import error_responses
from agora.runtime import parts_of, runtime_of
from agora.security.dependencies import CurrentPrincipal
from agora.security.strings import Text
from agora.services.auth.cookies import (
    clear_session_cookies,
    refresh_token_from,
    set_session_cookies,
)
from agora.services.auth.keys import KeyStore
from agora.services.auth.parts import AuthParts
from agora.services.auth.schemas import (
    AccountDeletion,
    Jwks,
    LoginRequest,
    PasswordChange,
    ProfileUpdate,
    RefreshRequest,
    SessionList,
    TokenPair,
    UserCreate,
    UserProfile,
    UserPublic,
)
from agora.services.auth.service import AuthService
from agora.services.auth.sessions import SessionService

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


# Dependencies are async on purpose: FastAPI runs a plain ``def`` dependency in the thread
# pool, a thread hand-off per request for what is an attribute read.
async def _service(request: Request) -> AuthService:
    return parts_of(request, AuthParts).auth


async def _settings(request: Request) -> Settings:
    return runtime_of(request).infra.settings


async def _keystore(request: Request) -> KeyStore:
    return parts_of(request, AuthParts).keystore


async def _sessions(request: Request) -> SessionService:
    return parts_of(request, AuthParts).sessions


ServiceDep = Annotated[AuthService, Depends(_service)]
SessionsDep = Annotated[SessionService, Depends(_sessions)]
SettingsDep = Annotated[Settings, Depends(_settings)]


# What the routes raise themselves; the statuses every route shares are added by
# ``agora.openapi_errors.describe_errors``.
LOGIN_BACKOFF = (
    "Rate limited (`rate_limited`), or too many failed attempts for this account "
    "(`login_backoff`); see `Retry-After`"
)
REFRESH_ERRORS = error_responses(
    401,
    403,
    descriptions={
        401: "No refresh token, or an invalid, expired or spent one (`unauthenticated`, "
        "`invalid_refresh_token`, `refresh_token_reused`: the session is ended)",
        403: "The cookie's CSRF check failed (`csrf_failed`)",
    },
)
WRONG_PASSWORD = error_responses(
    403,
    429,
    descriptions={403: "The password is wrong (`invalid_credentials`)", 429: LOGIN_BACKOFF},
)


def _token_response(response: Response, pair: TokenPair, settings: Settings) -> TokenPair:
    set_session_cookies(response, pair.refresh_token, settings)
    response.headers["Cache-Control"] = "no-store"
    return pair


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(
        409, descriptions={409: "The username or e-mail is taken (`conflict`)"}
    ),
)
async def register(body: UserCreate, service: ServiceDep) -> UserPublic:
    return await service.register(body)


@router.post(
    "/login",
    responses=error_responses(
        401,
        429,
        descriptions={
            401: "Wrong username or password (`invalid_credentials`)",
            429: LOGIN_BACKOFF,
        },
    ),
)
async def login(
    body: LoginRequest, response: Response, service: ServiceDep, settings: SettingsDep
) -> TokenPair:
    pair = await service.login(login=body.username, password=body.password)
    return _token_response(response, pair, settings)


@router.post("/refresh", responses=REFRESH_ERRORS)
async def refresh(
    request: Request,
    response: Response,
    service: ServiceDep,
    settings: SettingsDep,
    body: RefreshRequest | None = None,
) -> TokenPair:
    token = refresh_token_from(request, body.refresh_token if body else None, settings)
    if token is None:
        raise Unauthenticated("a refresh token is required (body or cookie)")
    pair = await service.refresh(token)
    return _token_response(response, pair, settings)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=REFRESH_ERRORS,
)
async def logout(
    request: Request,
    service: ServiceDep,
    settings: SettingsDep,
    body: RefreshRequest | None = None,
) -> Response:
    token = refresh_token_from(request, body.refresh_token if body else None, settings)
    if token is None:
        raise Unauthenticated("a refresh token is required (body or cookie)")
    await service.logout(token)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_session_cookies(response, settings)
    return response


@router.get("/me")
async def get_me(principal: CurrentPrincipal, service: ServiceDep) -> UserProfile:
    return await service.own_profile(principal.user_id)


@router.patch("/me")
async def update_me(
    body: ProfileUpdate, principal: CurrentPrincipal, service: ServiceDep
) -> UserProfile:
    return await service.update_profile(principal.user_id, body)


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=WRONG_PASSWORD,
)
async def delete_me(
    body: AccountDeletion, principal: CurrentPrincipal, service: ServiceDep, settings: SettingsDep
) -> Response:
    await service.delete_account(principal.user_id, body.password)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_session_cookies(response, settings)
    return response


@router.post(
    "/password",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=WRONG_PASSWORD,
)
async def change_password(
    body: PasswordChange, principal: CurrentPrincipal, sessions: SessionsDep
) -> Response:
    """Change the password (the current one is checked, with the login backoff, and the
    route shares login's per-address limit). Every other session ends at once: its refresh
    token, its access tokens and its WebSockets on every instance. The calling session stays."""
    await sessions.change_password(principal, current=body.current_password, new=body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/sessions")
async def list_sessions(principal: CurrentPrincipal, sessions: SessionsDep) -> SessionList:
    """The caller's live sessions (at most 100, most recently refreshed first); ``current``
    marks the one of this request's access token."""
    return await sessions.list(principal)


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(404),
)
async def revoke_session(
    session_id: Text, principal: CurrentPrincipal, sessions: SessionsDep
) -> Response:
    """End one of the caller's own sessions everywhere (its refresh token, access tokens and
    WebSockets). 404 for a session that is not the caller's, unknown, or already ended."""
    await sessions.revoke(principal, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users/{user_id}", responses=error_responses(404))
async def get_user(user_id: Text, service: ServiceDep) -> UserPublic:
    return await service.public_profile(user_id)


@router.get("/.well-known/jwks.json")
async def jwks(response: Response, keystore: Annotated[KeyStore, Depends(_keystore)]) -> Jwks:
    response.headers["Cache-Control"] = "public, max-age=60"
    return Jwks(keys=keystore.published_jwks())
