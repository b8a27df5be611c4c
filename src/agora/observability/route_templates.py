"""The route template of a request, for metric labels, span names and access lines.

Routing sets ``scope["route"]``. Requests answered before routing runs (a 429 from the rate
limiter, a 413 from the size limit) have none; they are matched here against the app's own
routes, walked once at start-up the way ``/metrics`` pre-initialisation walks them, so a
refusal is counted under its route instead of in one "unmatched" bucket. Ids never become
labels: only templates are returned.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from weakref import WeakKeyDictionary

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute, compile_path
from starlette.types import Scope

UNMATCHED = "unmatched"

# Per app: (template, compiled path, methods) in declaration order, as routing tries them.
_Table = list[tuple[str, re.Pattern[str], frozenset[str]]]
_tables: WeakKeyDictionary[object, _Table] = WeakKeyDictionary()


def effective_routes(routes: Sequence[BaseRoute]) -> Iterator[tuple[str, BaseRoute]]:
    """Every route with its full template. FastAPI (>= 0.160) keeps included routers as
    branches, so ``app.routes`` alone does not list them."""
    for context in iter_route_contexts(routes):
        if isinstance(context.path, str):
            yield context.path, context.original_route


def prepare(app: object, routes: Sequence[BaseRoute]) -> None:
    """Compile the app's templates: at start-up, tens of ms that no request should wait for."""
    _tables[app] = [
        (path, compile_path(path)[0], frozenset(getattr(route, "methods", None) or ()))
        for path, route in effective_routes(routes)
    ]


def route_template(scope: Scope) -> str:
    path: object = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    return _template_before_routing(scope)


def _template_before_routing(scope: Scope) -> str:
    app = scope.get("app")
    routes = getattr(app, "routes", None)
    if app is None or routes is None:
        return UNMATCHED
    if app not in _tables:
        prepare(app, routes)  # an app started without the service lifespan (tests)
    path, method = scope.get("path", ""), scope.get("method", "")
    same_path: str | None = None
    for template, regex, methods in _tables[app]:
        if regex.match(path):
            if method in methods:
                return template
            same_path = same_path or template
    return same_path or UNMATCHED  # a 405 is still that route's


def allowed_methods(scope: Scope) -> frozenset[str]:
    """Every method some route serves at this request's path: a 405's ``Allow``. Starlette's
    own names only the first route that matched the path, when one path is served by several
    routes (``GET`` and ``DELETE /posts/{id}`` are two), so a client would be told less than
    the truth."""
    app = scope.get("app")
    routes = getattr(app, "routes", None)
    if app is None or routes is None:
        return frozenset()
    if app not in _tables:
        prepare(app, routes)
    path = scope.get("path", "")
    return frozenset().union(*(methods for _, regex, methods in _tables[app] if regex.match(path)))
