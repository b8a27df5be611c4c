"""Security response headers on every HTTP response of a service (pure ASGI).

The API answers JSON only, so its Content-Security-Policy forbids everything: a response that
a browser is somehow made to render as a page can load nothing and be framed by no one. The
OpenAPI docs page (development only) gets its own policy, allowing exactly the bundled script
and stylesheet it serves itself and the hash of its one inline script.

``X-XSS-Protection`` is sent because the specification asks for it; current browsers ignore
it (Chrome removed the XSS auditor in 2019) and the CSP is what protects.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_CSP = "default-src 'none'; frame-ancestors 'none'"

_COMMON: tuple[tuple[bytes, bytes], ...] = (
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"x-xss-protection", b"1; mode=block"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
)
_NO_STORE = (b"cache-control", b"no-store")


def api_security_headers() -> tuple[tuple[bytes, bytes], ...]:
    """The headers an API answer made outside this middleware must carry itself (the load
    shedder's 503 answers before any middleware runs)."""
    return (*_COMMON, (b"content-security-policy", API_CSP.encode()), _NO_STORE)


class SecurityHeadersMiddleware:
    """Adds the headers a response does not set itself (a route may choose its own
    ``Cache-Control``, as the JWKS does). ``no_store`` marks every other response uncacheable:
    auth answers tokens and profiles, which no shared cache may keep."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        no_store: bool = False,
        docs_prefix: str | None = None,
        docs_csp: str | None = None,
    ) -> None:
        self.app = app
        self._no_store = no_store
        self._docs_prefix = docs_prefix
        self._api = (*_COMMON, (b"content-security-policy", API_CSP.encode()))
        self._docs = (*_COMMON, (b"content-security-policy", (docs_csp or API_CSP).encode()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = self._docs_prefix is not None and scope["path"].startswith(self._docs_prefix)
        extra = self._docs if docs else self._api

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(item for item in extra if item[0] not in present)
                if self._no_store and b"cache-control" not in present:
                    headers.append(_NO_STORE)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
