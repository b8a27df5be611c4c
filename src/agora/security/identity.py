"""Identity once: one pure-ASGI step reads the bearer token of a request, verifies it once and
puts the outcome in the scope, where the rate limiter, the route dependencies and ``/ws`` read
it (``identity_of``).

The token comes from the ``Authorization: Bearer`` header, or, for a WebSocket upgrade only
(browsers cannot set headers on one), from the ``access_token`` query parameter. A request
that names more than one token (two ``Authorization`` headers, or a header and a query
parameter that disagree, or two different query values) is ambiguous: which one the limiter
bills and which one the route trusts must never differ, so it is refused with 400
``ambiguous_credentials`` before anything else reads it, instead of being billed to the
anonymous budget.

Verification failures are kept, not raised: the route decides whether it needs a principal
(401) or not. A verifier that could not decide (say, auth's key store could not reload) is
kept as the exception, which the route dependency re-raises (a 503 or 500 from the
last-resort handler), while the limiter counts the request as anonymous.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from agora.errors import send_error
from agora.observability.logging import get_logger
from agora.security.tokens import InvalidToken, Principal, TokenVerifier

log = get_logger(__name__)

# The one scope key of this module (the ASGI scope is a dict; reads go through identity_of).
_SCOPE_KEY = "agora.identity"
POLICY_VIOLATION = 1008  # WebSocket close code (RFC 6455)


@dataclass(slots=True)
class Identity:
    """Who a request says it is. ``deleted`` and ``session_ended`` are filled by the rate
    limiter when it read the account's deletion mark and the session's end mark in its own
    round trip (None: not read yet)."""

    token: str | None = None
    principal: Principal | None = None
    invalid_reason: str | None = None
    undecided: BaseException | None = None
    deleted: bool | None = None
    session_ended: bool | None = None

    @property
    def user_id(self) -> str | None:
        return self.principal.user_id if self.principal is not None else None


ANONYMOUS = Identity()


def identity_of(scope: Scope) -> Identity:
    """The identity the identity step put in ``scope``; anonymous where it did not run
    (probes, ``/metrics``)."""
    identity = scope.get(_SCOPE_KEY)
    return identity if isinstance(identity, Identity) else ANONYMOUS


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class AmbiguousCredentials(Exception):
    pass


def presented_token(scope: Scope) -> str | None:
    """The one token ``scope`` presents; ``AmbiguousCredentials`` when it presents several."""
    headers = [value for name, value in scope["headers"] if name == b"authorization"]
    if len(headers) > 1:
        raise AmbiguousCredentials("more than one Authorization header")
    token = bearer_token(headers[0].decode("latin-1")) if headers else None
    if scope["type"] != "websocket":
        return token
    query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("access_token", [])
    if len(set(query)) > 1:
        raise AmbiguousCredentials("more than one access_token query parameter")
    if query and token is not None and query[0] != token:
        raise AmbiguousCredentials("the Authorization header and access_token disagree")
    return token if token is not None else (query[0] if query else None)


class IdentityMiddleware:
    def __init__(
        self, app: ASGIApp, *, verifier: TokenVerifier, exempt_paths: frozenset[str]
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.exempt_paths = exempt_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        try:
            token = presented_token(scope)
        except AmbiguousCredentials as exc:
            await _refuse(scope, receive, send, str(exc))
            return
        scope[_SCOPE_KEY] = await self.identify(token)
        await self.app(scope, receive, send)

    async def identify(self, token: str | None) -> Identity:
        return await self.identify_with(self.verifier, token)

    @staticmethod
    async def identify_with(verifier: TokenVerifier, token: str | None) -> Identity:
        """What the identity step decides about ``token`` (also for a token sent in-band)."""
        if token is None:
            return Identity()
        try:
            return Identity(token=token, principal=await verifier.verify(token))
        except InvalidToken as exc:
            return Identity(token=token, invalid_reason=str(exc))
        except Exception as exc:
            log.warning("token check could not decide", error=repr(exc))
            return Identity(token=token, undecided=exc)


async def _refuse(scope: Scope, receive: Receive, send: Send, reason: str) -> None:
    message = f"ambiguous credentials: {reason}; send exactly one bearer token"
    if scope["type"] == "http":
        await send_error(send, 400, "ambiguous_credentials", message)
        return
    if (await receive())["type"] != "websocket.connect":
        return  # the client went away before its handshake was answered
    # Before accept, a close is the server's refusal of the handshake (HTTP 403).
    await send({"type": "websocket.close", "code": POLICY_VIOLATION, "reason": "ambiguous"})
