"""Cross-site request checks for requests that a browser authenticates on its own (cookies).

Double-submit token: the CSRF cookie is readable by our page's script but not by another
site's; a request must repeat it in ``X-CSRF-Token``. ``SameSite=Strict`` keeps the cookies off
cross-site requests in current browsers, and the ``Origin`` check refuses a request whose
browser says it comes from a page that is neither this service's own origin nor one listed in
``AGORA_CORS_ORIGINS``. Each covers a gap of the others (old browsers without SameSite, a
sibling subdomain that can plant cookies, a missing ``Origin`` on some same-origin requests).
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.requests import Request


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def origin_allowed(request: Request, allowed_origins: list[str]) -> bool:
    """False when the browser names a foreign origin. ``Origin`` first, else ``Referer``;
    neither (a non-browser client, or a privacy setting) leaves the decision to the token."""
    claimed = request.headers.get("origin")
    if claimed is None:
        referer = request.headers.get("referer")
        if referer is None:
            return True
        claimed = _origin_of(referer) or "null"
    claimed = claimed.lower()
    if claimed in {o.lower().rstrip("/") for o in allowed_origins}:
        return True
    # Our own pages: the host the browser addressed. The scheme is not compared, because TLS
    # ends at the gateway and the service sees plain HTTP.
    host = request.headers.get("host", "").lower()
    return bool(host) and urlsplit(claimed).netloc == host


def tokens_match(cookie: str, header: str) -> bool:
    """Constant-time comparison; empty values never match."""
    return bool(cookie) and bool(header) and hmac.compare_digest(cookie.encode(), header.encode())
