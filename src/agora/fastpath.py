"""A service's own answer to a request it can serve without the framework: the middleware
right after the rate limiter, inside admission, the security headers, the request context,
the drain's 503, identity and the limiter; outside CORS, the body limits and FastAPI.

The layers it skips would pass its requests through untouched: it takes no request with an
``Origin`` (CORS would add headers) or a body (``Content-Length``, ``Transfer-Encoding``: the
body limits would read it), and the request deadline cannot fire on an answer already in hand.

Why: a cached read is a few dictionary lookups and one Redis reply already in hand, while
FastAPI's routing (every route's pattern tried in turn), its dependency solving and its
response validation and serialisation cost several times that. A shortcut answers only what it
can answer exactly as the route would (same status, body and headers, the route's template in
``scope["route"]`` for metrics, logs and spans) and hands anything else — an error, a miss, a
case it does not know — to the route by returning False, so the route stays the definition of
the behaviour and the shortcut never needs to repeat its error handling.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send

Shortcut = Callable[[Scope, Send], Awaitable[bool]]
"""``shortcut(scope, send)``: True when it answered the request (the response is sent)."""


class ShortcutMiddleware:
    def __init__(self, app: ASGIApp, *, shortcut: Shortcut) -> None:
        self.app = app
        self.shortcut = shortcut

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _plain(scope) and await self.shortcut(scope, send):
            return
        await self.app(scope, receive, send)


_NOT_PLAIN = frozenset({b"origin", b"content-length", b"transfer-encoding"})


def _plain(scope: Scope) -> bool:
    """No header that CORS or the body limits act on."""
    return not any(name in _NOT_PLAIN for name, _ in scope["headers"])


def json_response_start(body: bytes) -> dict[str, object]:
    """The ``http.response.start`` of a 200 JSON body, with the headers FastAPI's
    ``JSONResponse`` sends, in its order."""
    return {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
        ],
    }
