"""The OpenAPI docs page without a CDN: Swagger UI's files come from the ``fastapi-offline``
package and are served by the service itself, under a policy that allows only them.

A CDN-hosted docs page would run third-party script with the page's origin; here the only
scripts are the bundled file (``'self'``) and the page's one inline script, allowed by its
SHA-256 hash (computed from the page as generated, so it cannot drift). Production turns the
docs off altogether (``build_app``).
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from importlib.util import find_spec
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def docs_available() -> bool:
    """The assets come with the ``devstack`` extra; a production image has no docs page."""
    return find_spec("fastapi_offline") is not None


def _assets_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def docs_page(*, title: str, openapi_url: str, static_url: str) -> tuple[bytes, str]:
    """The page and its Content-Security-Policy."""
    page = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=title,
        swagger_js_url=f"{static_url}/swagger-ui-bundle.js",
        swagger_css_url=f"{static_url}/swagger-ui.css",
        swagger_favicon_url=f"{static_url}/favicon.png",
    ).body
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(bytes(page).decode())
    )
    csp = (
        "default-src 'none'; "
        f"script-src 'self' {hashes}; "
        # Swagger UI sets style attributes from its script.
        "style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; "
        "connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
    return bytes(page), csp


def mount_docs(app: FastAPI, *, prefix: str, openapi_url: str) -> str:
    """Serve the docs at ``{prefix}/docs`` with their assets; returns the page's CSP."""
    static_url = f"{prefix}/docs/static"
    page, csp = docs_page(title=app.title, openapi_url=openapi_url, static_url=static_url)

    async def docs() -> HTMLResponse:
        return HTMLResponse(page)

    # First in the route table: a service's own ``{prefix}/{id}`` route must not shadow them.
    app.router.routes[:0] = [
        APIRoute(f"{prefix}/docs", docs, methods=["GET"], include_in_schema=False),
        Mount(static_url, StaticFiles(directory=_assets_dir()), name=f"{prefix}-docs-static"),
    ]
    return csp
