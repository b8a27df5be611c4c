"""What the gateway does at the edge: CORS, request ids end to end, token checks."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from agora.security.keys import SigningKey, generate_signing_key
from agora.security.tokens import TokenIssuer
from tests.gateway.conftest import Stack, bearer, register_and_login, unique

pytestmark = pytest.mark.e2e

APP = "https://app.example"
EVIL = "https://evil.example"


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway.url, timeout=10) as http:
        yield http


def eventually_logged(read: Callable[[], str], needle: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in read():
            return True
        time.sleep(0.05)
    return False


# --- CORS -------------------------------------------------------------------------------


def test_preflight_from_an_allowed_origin_is_answered_at_the_edge(
    stack: Stack, client: httpx.Client
) -> None:
    response = client.options(
        "/api/v1/posts",
        headers={
            "Origin": APP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
            "x-request-id": "preflight-allowed",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "authorization" in response.headers["access-control-allow-headers"]
    # Answered by the gateway: no token was needed and no service saw it.
    assert stack.gateway.access_entry("preflight-allowed")["upstream.address"] is None


def test_preflight_from_another_origin_gets_no_cors_grant(
    stack: Stack, client: httpx.Client
) -> None:
    response = client.options(
        "/api/v1/posts",
        headers={
            "Origin": EVIL,
            "Access-Control-Request-Method": "POST",
            "x-request-id": "preflight-refused",
        },
    )
    # Without Access-Control-Allow-Origin naming it, a browser refuses the real request.
    assert "access-control-allow-origin" not in response.headers
    assert EVIL not in str(response.headers)
    assert stack.gateway.access_entry("preflight-refused")["upstream.address"] is None


def test_simple_requests_carry_the_grant_only_for_allowed_origins(client: httpx.Client) -> None:
    jwks = "/api/v1/auth/.well-known/jwks.json"
    allowed = client.get(jwks, headers={"Origin": APP})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == APP
    assert "x-request-id" in allowed.headers["access-control-expose-headers"]
    refused = client.get(jwks, headers={"Origin": EVIL})
    assert "access-control-allow-origin" not in refused.headers
    # Even the gateway's own refusals are readable by the allowed origin.
    unauthenticated = client.get("/api/v1/posts/feed", headers={"Origin": APP})
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["access-control-allow-origin"] == APP


# --- request ids ------------------------------------------------------------------------


def test_request_id_is_made_at_the_edge_and_reaches_the_service_log(
    stack: Stack, client: httpx.Client
) -> None:
    response = client.get("/api/v1/auth/.well-known/jwks.json")
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f-]{36}", request_id)
    assert response.headers.get_list("x-request-id") == [request_id]
    assert stack.gateway.access_entry(request_id)["upstream.cluster"] == "auth"
    auth = stack.service("auth")[0]
    assert eventually_logged(lambda: _compact(auth.logs()), f'"http.request.id":"{request_id}"')


def test_callers_request_id_is_kept_end_to_end(stack: Stack, client: httpx.Client) -> None:
    _, token = register_and_login(client, unique("rid"))
    request_id = f"client-{uuid.uuid4().hex}"
    response = client.get(
        "/api/v1/posts/feed", headers={**bearer(token), "x-request-id": request_id}
    )
    assert response.status_code == 200, response.text
    assert response.headers.get_list("x-request-id") == [request_id]
    assert stack.gateway.access_entry(request_id)["upstream.cluster"] == "posts"
    posts = stack.service("posts")[0]
    assert eventually_logged(lambda: _compact(posts.logs()), f'"http.request.id":"{request_id}"')


def _compact(text: str) -> str:
    """Service log lines as JSON without spaces after separators, for plain substring tests."""
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.dumps(json.loads(line), separators=(",", ":")))
        except ValueError:
            continue
    return "\n".join(lines)


# --- tokens -----------------------------------------------------------------------------


def _real_kid(client: httpx.Client) -> str:
    keys = client.get("/api/v1/auth/.well-known/jwks.json").json()["keys"]
    return str(keys[0]["kid"])


def _forged_tokens(client: httpx.Client, user_id: str, genuine: str) -> dict[str, str]:
    attacker = generate_signing_key()
    issuer = TokenIssuer(issuer="agora", audience="agora", ttl_s=900)
    # The attacker's key under the real key's name: the signature cannot match.
    impostor = SigningKey(kid=_real_kid(client), private_key=attacker.private_key)
    header, payload, signature = genuine.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = str(uuid.uuid4())
    tampered_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    unsigned_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=")
    return {
        "unknown key": issuer.issue(user_id, attacker),
        "real kid, wrong key": issuer.issue(user_id, impostor),
        "tampered claims": f"{header}.{tampered_payload.decode()}.{signature}",
        "alg none": f"{unsigned_header.decode()}.{payload}.",
        "wrong audience": TokenIssuer(issuer="agora", audience="other", ttl_s=900).issue(
            user_id, impostor
        ),
    }


def test_forged_tokens_are_refused_at_the_edge(stack: Stack, client: httpx.Client) -> None:
    user_id, genuine = register_and_login(client, unique("forge"))
    assert client.get("/api/v1/posts/feed", headers=bearer(genuine)).status_code == 200
    for what, token in _forged_tokens(client, user_id, genuine).items():
        request_id = f"forged-{uuid.uuid4().hex}"
        response = client.get(
            "/api/v1/posts/feed", headers={**bearer(token), "x-request-id": request_id}
        )
        # Envoy answers a token for another audience 403, any other bad token 401.
        expected = (403, "forbidden") if what == "wrong audience" else (401, "unauthenticated")
        error = response.json()["error"]
        assert (response.status_code, error["code"]) == expected, f"{what}: {response.text}"
        assert error["request_id"] == request_id
        entry = stack.gateway.access_entry(request_id)
        assert entry["upstream.address"] is None, f"{what} reached a service: {entry}"
    # The services never saw any of them.
    posts_log = stack.service("posts")[0].logs()
    assert "forged-" not in posts_log


def test_public_auth_routes_need_no_token(client: httpx.Client) -> None:
    username = unique("open")
    registered = client.post(
        "/api/v1/auth/register",
        json={"username": username, "email": f"{username}@example.com", "password": "x" * 12},
    )
    assert registered.status_code == 201, registered.text
    # A bad bearer on an open route is the service's business, not the gateway's.
    login = client.post(
        "/api/v1/auth/login",
        json={"username": username, "password": "x" * 12},
        headers=bearer("not-a-token"),
    )
    assert login.status_code == 200, login.text
