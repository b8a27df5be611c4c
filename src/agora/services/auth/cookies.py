"""Browser sessions: the HttpOnly refresh cookie and the double-submit CSRF cookie.

The refresh cookie is sent by the browser on its own, so a request that relies on it must also
prove it comes from our page: it repeats the (script-readable) CSRF cookie in a header, which a
cross-site page cannot read. A refresh token in the JSON body needs no such proof.
"""

from __future__ import annotations

import secrets

from fastapi import Request, Response

from agora.config import Settings
from agora.errors import Forbidden
from agora.security.csrf import origin_allowed, tokens_match

REFRESH_COOKIE = "agora_refresh"
CSRF_COOKIE = "agora_csrf"
CSRF_HEADER = "X-CSRF-Token"
REFRESH_COOKIE_PATH = "/api/v1/auth"


def set_session_cookies(response: Response, refresh_token: str, settings: Settings) -> None:
    secure = settings.effective_cookie_secure
    max_age = settings.refresh_token_ttl_s
    response.set_cookie(
        REFRESH_COOKIE,
        refresh_token,
        max_age=max_age,
        path=REFRESH_COOKIE_PATH,
        secure=secure,
        httponly=True,
        samesite="strict",
    )
    response.set_cookie(
        CSRF_COOKIE,
        secrets.token_urlsafe(32),
        max_age=max_age,
        path="/",
        secure=secure,
        httponly=False,
        samesite="strict",
    )


def clear_session_cookies(response: Response, settings: Settings) -> None:
    secure = settings.effective_cookie_secure
    response.delete_cookie(
        REFRESH_COOKIE, path=REFRESH_COOKIE_PATH, secure=secure, httponly=True, samesite="strict"
    )
    response.delete_cookie(CSRF_COOKIE, path="/", secure=secure, samesite="strict")


def refresh_token_from(request: Request, body_token: str | None, settings: Settings) -> str | None:
    """The body's token, else the cookie's (after the CSRF checks), else None."""
    if body_token is not None:
        return body_token
    cookie_token = request.cookies.get(REFRESH_COOKIE)
    if not cookie_token:
        return None
    check_csrf(request, settings)
    return cookie_token


def check_csrf(request: Request, settings: Settings) -> None:
    if not origin_allowed(request, settings.cors_origins):
        raise Forbidden("the request comes from an origin that is not allowed", code="csrf_failed")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = request.headers.get(CSRF_HEADER, "")
    if not tokens_match(cookie, header):
        raise Forbidden(
            f"the {CSRF_HEADER} header must repeat the {CSRF_COOKIE} cookie", code="csrf_failed"
        )
