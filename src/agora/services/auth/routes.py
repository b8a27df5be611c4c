"""HTTP routes of the auth service: parse, call the service, shape the response."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from agora.config import Settings
from agora.errors import Unauthenticated
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
    ProfileUpdate,
    RefreshRequest,
    TokenPair,
    UserCreate,
    UserProfile,
    UserPublic,
)
from agora.services.auth.service import AuthService

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


# Dependencies are async on purpose: FastAPI runs a plain ``def`` dependency in the thread
# pool, a thread hand-off per request for what is an attribute read.
async def _service(request: Request) -> AuthService:
    return parts_of(request, AuthParts).auth


async def _settings(request: Request) -> Settings:
    return runtime_of(request).infra.settings


async def _keystore(request: Request) -> KeyStore:
    return parts_of(request, AuthParts).keystore


ServiceDep = Annotated[AuthService, Depends(_service)]
SettingsDep = Annotated[Settings, Depends(_settings)]


def _token_response(response: Response, pair: TokenPair, settings: Settings) -> TokenPair:
    set_session_cookies(response, pair.refresh_token, settings)
    response.headers["Cache-Control"] = "no-store"
    return pair


@router.post("/register", status_code=status.HTTP_201_CREATED)
async def register(body: UserCreate, service: ServiceDep) -> UserPublic:
    return await service.register(body)


@router.post("/login")
async def login(
    body: LoginRequest, response: Response, service: ServiceDep, settings: SettingsDep
) -> TokenPair:
    pair = await service.login(login=body.username, password=body.password)
    return _token_response(response, pair, settings)


@router.post("/refresh")
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


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
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


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_me(
    body: AccountDeletion, principal: CurrentPrincipal, service: ServiceDep, settings: SettingsDep
) -> Response:
    await service.delete_account(principal.user_id, body.password)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_session_cookies(response, settings)
    return response


@router.get("/users/{user_id}")
async def get_user(user_id: Text, service: ServiceDep) -> UserPublic:
    return await service.public_profile(user_id)


@router.get("/.well-known/jwks.json")
async def jwks(response: Response, keystore: Annotated[KeyStore, Depends(_keystore)]) -> Jwks:
    response.headers["Cache-Control"] = "public, max-age=60"
    return Jwks(keys=keystore.published_jwks())
