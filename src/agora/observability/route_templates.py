"""The route template of a request, for metric labels, span names and access lines.

Routing sets ``scope["route"]``. Requests answered before routing runs (a 429 from the rate
limiter, a 413 from the size limit) have none; they are matched here against the app's OpenAPI
paths — the public, stable list of its templates — so a refusal is counted under its route
instead of in one "unmatched" bucket. Ids never become labels: only templates are returned.
"""

from __future__ import annotations

import re
from weakref import WeakKeyDictionary

from starlette.routing import compile_path
from starlette.types import Scope

UNMATCHED = "unmatched"

# Per app: (template, compiled path, methods) in declaration order, as routing tries them.
_Templates = list[tuple[str, re.Pattern[str], frozenset[str]]]
_templates: WeakKeyDictionary[object, _Templates] = WeakKeyDictionary()


def route_template(scope: Scope) -> str:
    path: object = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    return _template_before_routing(scope)


def _template_before_routing(scope: Scope) -> str:
    app = scope.get("app")
    if app is None or not hasattr(app, "openapi"):
        return UNMATCHED
    templates = _templates.get(app)
    if templates is None:
        templates = _templates[app] = _compile(app.openapi())
    path, method = scope.get("path", ""), scope.get("method", "").lower()
    same_path: str | None = None
    for template, regex, methods in templates:
        if regex.match(path):
            if method in methods:
                return template
            same_path = same_path or template
    return same_path or UNMATCHED  # a 405 is still that route's


def _compile(schema: dict[str, object]) -> _Templates:
    paths = schema.get("paths")
    if not isinstance(paths, dict):
        return []
    return [
        (template, compile_path(template)[0], frozenset(operations))
        for template, operations in paths.items()
    ]
