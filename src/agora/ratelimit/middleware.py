"""The HTTP rate-limit middleware (pure ASGI: no ``BaseHTTPMiddleware``, starlette #1678).

One limit applies to each request, chosen before the route runs:

- ``credentials``: register, login and refresh, per client address (password guessing and
  account farming are what these endpoints attract; the caller has no identity yet);
- ``user``: any request with a valid bearer token, per user id, shared by every service and
  instance. The token was verified once by the identity step before this one
  (``agora.security.identity``); this reads its outcome from the scope;
- ``anonymous``: everything else (no token, or one that does not verify), per address.

A WebSocket upgrade is a request like any other (its token may also come as the
``access_token`` query parameter). A refused upgrade is accepted, told why with the contract's
``error`` event and closed with 1013 (try again later): uvicorn's wsproto server can only
refuse a handshake with a bare 403, which a client cannot tell from a bad token.

Probes, ``/metrics`` and the JWKS (the key every verifier depends on, served from memory) are
never limited; nor are allowlisted networks and callers presenting the internal token.
"""

from __future__ import annotations

import hmac
import math
import time
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agora.cache import prefetch
from agora.cache.prefetch import Lookahead
from agora.config import Settings
from agora.errors import send_error, websocket_error_frame
from agora.observability.logging import get_logger
from agora.observability.metrics import RATELIMIT_REJECTIONS
from agora.ratelimit.clients import Networks, bucket_name, client_address
from agora.ratelimit.gcra import Decision
from agora.ratelimit.limiter import RateLimiter
from agora.ratelimit.rates import Rate
from agora.redis.access import RedisAccess
from agora.security.identity import identity_of
from agora.security.revocation import DeletedUsers, RevokedSessions

log = get_logger(__name__)

INTERNAL_TOKEN_HEADER = b"x-agora-internal-token"
TRY_AGAIN_LATER = 1013  # WebSocket close code (RFC 6455 registry)
CREDENTIAL_PATHS = frozenset(
    {
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        # Checks a password: guessing it must cost what guessing at login costs.
        "/api/v1/auth/password",
    }
)
EXEMPT_PATHS = frozenset(
    {
        "/metrics",
        "/healthz",
        "/healthz/live",
        "/healthz/ready",
        "/readyz",
        "/api/v1/auth/.well-known/jwks.json",
    }
)


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    rate: Rate

    @property
    def policy_header(self) -> bytes:
        """draft-ietf-httpapi-ratelimit-headers-11 ``RateLimit-Policy``: quota per window."""
        return f'"{self.name}";q={self.rate.limit};w={self.rate.period_s}'.encode()


def build_rate_limiter(settings: Settings, access: RedisAccess) -> RateLimiter:
    return RateLimiter(
        access,
        fallback_s=settings.ratelimit_fallback_s,
        max_backoff_s=settings.ratelimit_max_backoff_s,
    )


class RateLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        limiter: RateLimiter,
        deleted_users: DeletedUsers | None,
        revoked_sessions: RevokedSessions | None = None,
        lookahead: Lookahead | None = None,
    ) -> None:
        self.app = app
        self.lookahead = lookahead
        self.limiter = limiter
        self.deleted_users = deleted_users
        self.revoked_sessions = revoked_sessions
        self.user = Policy("user", settings.ratelimit_user)
        self.credentials = Policy("credentials", settings.ratelimit_credentials)
        self.anonymous = Policy("anonymous", settings.ratelimit_anonymous)
        self.trusted = Networks(settings.trusted_proxies)
        self.allowlist = Networks(settings.ratelimit_allowlist)
        token = settings.internal_token
        self.internal_token = token.get_secret_value().encode() if token else None
        self.max_backoff_s = settings.ratelimit_max_backoff_s

    # One frame per request on purpose: this is the request path issue 12 measures; its branches
    # are the exemptions (internal token, allowlist), the policy choice and the fail-open path.
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: C901, PLR0912, PLR0915
        if scope["type"] not in ("http", "websocket") or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        internal: bytes | None = None
        forwarded: list[str] = []
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                forwarded.append(value.decode("latin-1"))
            elif name == INTERNAL_TOKEN_HEADER:
                internal = value
        if self._internal(internal):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client_address(client[0] if client else None, forwarded, self.trusted)
        if address is not None and self.allowlist and address in self.allowlist:
            await self.app(scope, receive, send)
            return

        identity = identity_of(scope)
        user_id: str | None = None
        if scope["path"].rstrip("/") in CREDENTIAL_PATHS:
            policy, key = self.credentials, f"credentials:{bucket_name(address)}"
        elif user_id := identity.user_id:
            policy, key = self.user, f"user:{user_id}"
        else:
            policy, key = self.anonymous, f"anonymous:{bucket_name(address)}"
        entry: str | None = None
        looked: list[Any] | None = None
        if user_id and self.deleted_users is not None:
            # The account's deletion mark, and the cache lookup the route is known to make,
            # ride in the same round trip as the limit.
            lookup = None
            if self.lookahead is not None and scope["type"] == "http":
                entry = self.lookahead.entry_for(scope, user_id)
                lookup = (self.lookahead.script_sha, entry) if entry is not None else None
            marks = [self.deleted_users.mark_key(user_id)]
            session_id = identity.principal.session_id if identity.principal else None
            if session_id is not None and self.revoked_sessions is not None:
                marks.append(self.revoked_sessions.mark_key(session_id))
            decision, found, looked = await self.limiter.hit_and_check(
                key, policy.rate, marks, lookup
            )
            if found is not None:
                identity.deleted = found[0]
                if len(found) > 1:
                    identity.session_ended = found[1]
        else:
            decision = await self.limiter.hit(key, policy.rate)
        if not decision.allowed:
            RATELIMIT_REJECTIONS.labels(policy.name).inc()
            if scope["type"] == "websocket":
                await _refuse_upgrade(receive, send, policy, decision)
            else:
                await self._reject(send, policy, decision)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        headers = _headers(policy, decision)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        if entry is None or looked is None:
            await self.app(scope, receive, send_with_headers)
            return
        offered = prefetch.offer(entry, looked)
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            prefetch.withdraw(offered)

    def _internal(self, presented: bytes | None) -> bool:
        if self.internal_token is None or presented is None:
            return False
        return hmac.compare_digest(presented, self.internal_token)

    async def _reject(self, send: Send, policy: Policy, decision: Decision) -> None:
        retry_after = max(1, math.ceil(decision.retry_after_s))
        backoff = decision.suggested_backoff_s(self.max_backoff_s)
        await send_error(
            send,
            429,
            "rate_limited",
            f"too many requests: the {policy.name} limit is {policy.rate.limit} per "
            f"{policy.rate.period_s} s; retry in {retry_after} s",
            headers=((b"retry-after", str(retry_after).encode()), *_headers(policy, decision)),
            extra={"retry_after_s": retry_after, "backoff_s": backoff},
        )


async def _refuse_upgrade(receive: Receive, send: Send, policy: Policy, decision: Decision) -> None:
    retry_after_ms = max(1, math.ceil(decision.retry_after_s * 1000))
    message = await receive()
    if message["type"] != "websocket.connect":
        return  # the client went away before its handshake was answered
    await send({"type": "websocket.accept"})
    frame = websocket_error_frame(
        "rate_limited",
        f"too many requests: the {policy.name} limit is {policy.rate.limit} per "
        f"{policy.rate.period_s} s",
        retry_after_ms=retry_after_ms,
    )
    await send({"type": "websocket.send", "text": frame})
    await send({"type": "websocket.close", "code": TRY_AGAIN_LATER, "reason": "rate limited"})


def _headers(policy: Policy, decision: Decision) -> list[tuple[bytes, bytes]]:
    """GitHub-style ``X-RateLimit-*`` (reset as UTC epoch seconds) and the IETF draft's
    ``RateLimit-Policy`` / ``RateLimit`` (reset as seconds from now)."""
    reset_in = math.ceil(decision.reset_s)
    remaining = str(decision.remaining).encode()
    return [
        (b"x-ratelimit-limit", str(decision.limit).encode()),
        (b"x-ratelimit-remaining", remaining),
        (b"x-ratelimit-reset", str(math.ceil(time.time() + decision.reset_s)).encode()),
        (b"ratelimit-policy", policy.policy_header),
        (b"ratelimit", f'"{policy.name}";r={decision.remaining};t={reset_in}'.encode()),
    ]
