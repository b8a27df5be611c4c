"""``GET /api/v1/posts/{id}`` served from the cache without FastAPI (``agora.fastpath``).

The rate limiter sent the entry's lookup in its own round trip (``agora.cache.prefetch``) and
read the account's deletion mark in it: when that lookup found the entry fresh and the caller
is a verified, undeleted user, the stored JSON is the answer — the very bytes the route would
send, since the entry is ``PostPublic.model_dump_json()`` of the model the route returns.
Everything else (no token, a bad or undecided one, a deleted account, an ended session, a
miss, no lookup sent ahead) goes to the route, which answers it as before.
"""

from __future__ import annotations

import re

from starlette.routing import BaseRoute
from starlette.types import Scope, Send

from agora.fastpath import Shortcut, json_response_start
from agora.observability.context import bind_user
from agora.security.identity import identity_of
from agora.services.posts.service import PostsService

_ONE_POST = re.compile(r"/api/v1/posts/([^/]+)")


def cached_post_shortcut(posts: PostsService, route: BaseRoute) -> Shortcut:
    """``route``: the route this answers for, put in the scope as routing would (the metrics,
    the access line and the span name it by its template)."""

    async def serve(scope: Scope, send: Send) -> bool:
        if scope["method"] != "GET":
            return False
        match = _ONE_POST.fullmatch(scope["path"])
        if match is None:
            return False
        identity = identity_of(scope)
        principal = identity.principal
        # What CurrentPrincipal would accept without asking anyone: a verified token whose
        # account and session the limiter's round trip found neither deleted nor ended.
        if principal is None or identity.undecided is not None or identity.deleted is not False:
            return False
        if principal.session_id is not None and identity.session_ended is not False:
            return False
        body = posts.cached_post_json(principal=principal, post_id=match[1])
        if body is None:
            return False
        bind_user(principal.user_id)
        scope["route"] = route
        await send(json_response_start(body))
        await send({"type": "http.response.body", "body": body})
        return True

    return serve
