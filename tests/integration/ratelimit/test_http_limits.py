"""The HTTP middleware on real apps, real Redis and the real default limits."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from prometheus_client import REGISTRY

from agora.config import Settings
from agora.services.auth.app import create_app as create_auth
from agora.services.posts.app import create_app as create_posts
from tests.conftest import TokenFactory
from tests.integration.ratelimit.conftest import Start, rejections

FEED = "/api/v1/posts/feed"
LOGIN = "/api/v1/auth/login"


_names = itertools.count()


def refused_on(route: str) -> float:
    labels = {"service": "posts", "method": "GET", "route": route, "status": "429"}
    return REGISTRY.get_sample_value("agora_http_requests_total", labels) or 0.0


def wrong_login() -> dict[str, str]:
    """A failed login of a new account each time: the per-account login backoff (security)
    must not be what refuses these tests' requests."""
    return {"username": f"nobody_{next(_names)}", "password": "wrong password"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def posts(start: Start, settings: Settings, tokens: TokenFactory) -> Any:
    return await start(create_posts(settings, key_resolver=tokens.resolver))


async def test_the_default_user_limit_and_what_a_refused_client_is_told(
    start: Start,
    limited_settings: Callable[..., Settings],
    tokens: TokenFactory,
    make_user: Callable[[], str],
) -> None:
    app = await posts(start, limited_settings(), tokens)
    client = app.client()
    headers = bearer(tokens(make_user()))
    before = rejections("user")
    refused_before = refused_on(FEED)

    started = time.monotonic()
    first = await client.get(FEED, headers=headers)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit"] == "100"
    assert first.headers["x-ratelimit-remaining"] == "99"
    assert first.headers["ratelimit-policy"] == '"user";q=100;w=60'
    assert first.headers["ratelimit"] == '"user";r=99;t=1'  # 0.6 s until full again
    reset = int(first.headers["x-ratelimit-reset"])  # UTC epoch seconds
    assert time.time() <= reset <= time.time() + 2
    allowed = 1
    while (refused := await client.get(FEED, headers=headers)).status_code == 200:
        allowed += 1
        assert allowed <= 200
    # 100 at once, plus one per 0.6 s that the loop took.
    assert 100 <= allowed <= 101 + (time.monotonic() - started) / 0.6

    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"  # 0.6 s, rounded up
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert refused.headers["ratelimit-policy"] == '"user";q=100;w=60'
    assert refused.headers["ratelimit"].startswith('"user";r=0;t=')
    error = refused.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["request_id"] == refused.headers["x-request-id"]
    assert error["retry_after_s"] == 1
    assert error["backoff_s"] == 1
    assert "100 per 60 s" in error["message"]
    assert rejections("user") == before + 1
    # Refused before routing, still counted under its route template.
    assert refused_on(FEED) == refused_before + 1


async def test_exact_countdown_and_a_backoff_that_doubles(
    start: Start,
    limited_settings: Callable[..., Settings],
    tokens: TokenFactory,
    make_user: Callable[[], str],
) -> None:
    # 100 an hour: a request's worth refills in 36 s, so nothing refills during the test.
    app = await posts(start, limited_settings(ratelimit_user="100/hour"), tokens)
    client = app.client()
    headers = bearer(tokens(make_user()))
    remaining = []
    started = time.monotonic()
    for _ in range(100):
        response = await client.get(FEED, headers=headers)
        assert response.status_code == 200
        remaining.append(int(response.headers["x-ratelimit-remaining"]))
    elapsed = time.monotonic() - started
    assert remaining == list(range(99, -1, -1))
    # t: seconds until the whole budget is back, 3600 after the first request (a loaded
    # machine takes a second or more for the hundred)
    policy, left, reset = response.headers["ratelimit"].split(";")
    assert (policy, left) == ('"user"', "r=0")
    assert 3600 - math.ceil(elapsed) - 1 <= int(reset.removeprefix("t=")) <= 3600
    refusals = [await client.get(FEED, headers=headers) for _ in range(6)]
    assert {r.headers["retry-after"] for r in refusals} == {"36"}
    backoffs = [r.json()["error"]["backoff_s"] for r in refusals]
    assert backoffs == [36, 72, 144, 288, 300, 300]  # doubled, capped at 300 s


async def test_each_user_has_a_budget_whatever_their_address(
    start: Start,
    limited_settings: Callable[..., Settings],
    tokens: TokenFactory,
    make_user: Callable[[], str],
) -> None:
    app = await posts(start, limited_settings(ratelimit_user="3/minute"), tokens)
    alice, bob = bearer(tokens(make_user())), bearer(tokens(make_user()))
    from_home, from_office = app.client("198.51.100.1"), app.client("198.51.100.2")
    assert [(await from_home.get(FEED, headers=alice)).status_code for _ in range(2)] == [200] * 2
    assert (await from_office.get(FEED, headers=alice)).status_code == 200
    assert (await from_office.get(FEED, headers=alice)).status_code == 429
    assert (await from_home.get(FEED, headers=bob)).status_code == 200
    # A new token of the same user is the same user.
    assert (await from_home.get(FEED, headers=bearer(tokens(_sub(alice))))).status_code == 429


def _sub(headers: dict[str, str]) -> str:
    claims = jwt.decode(headers["Authorization"][7:], options={"verify_signature": False})
    return str(claims["sub"])


async def test_two_instances_share_one_users_limit(
    start: Start,
    limited_settings: Callable[..., Settings],
    tokens: TokenFactory,
    make_user: Callable[[], str],
) -> None:
    settings = limited_settings(ratelimit_user="100/hour")  # no refill during the test
    one, two = await posts(start, settings, tokens), await posts(start, settings, tokens)
    headers = bearer(tokens(make_user()))
    statuses = []
    for i in range(100):
        client = one.client() if i % 2 else two.client()
        statuses.append((await client.get(FEED, headers=headers)).status_code)
    assert statuses == [200] * 100
    assert (await one.client().get(FEED, headers=headers)).status_code == 429
    assert (await two.client().get(FEED, headers=headers)).status_code == 429


async def test_unauthenticated_requests_are_limited_per_address(
    start: Start, limited_settings: Callable[..., Settings], tokens: TokenFactory
) -> None:
    app = await posts(start, limited_settings(), tokens)
    client = app.client("198.51.100.1")
    before = rejections("anonymous")
    started = time.monotonic()
    answered = 0
    while True:
        # No token, and a token that does not verify: both are anonymous.
        headers = bearer("not-a-token") if answered % 2 else {}
        response = await client.get(FEED, headers=headers)
        if response.status_code == 429:
            break
        assert response.status_code == 401
        assert response.headers["ratelimit-policy"] == '"anonymous";q=60;w=60'
        answered += 1
    # 60 at once, plus one per second that the loop took.
    assert 60 <= answered <= 61 + (time.monotonic() - started)
    refused = response
    assert refused.headers["retry-after"] == "1"
    assert rejections("anonymous") == before + 1
    assert (await app.client("198.51.100.2").get(FEED)).status_code == 401


async def test_credential_endpoints_allow_five_a_minute_per_address(
    start: Start, limited_settings: Callable[..., Settings]
) -> None:
    app = await start(create_auth(limited_settings()))
    gateway = app.client("127.0.0.1")  # the default trusted proxy
    first = {"X-Forwarded-For": "198.51.100.1"}
    responses = [
        await gateway.post(LOGIN, json=wrong_login(), headers=first),
        await gateway.post(LOGIN, json=wrong_login(), headers=first),
        await gateway.post("/api/v1/auth/register", json={}, headers=first),
        await gateway.post("/api/v1/auth/refresh", json={}, headers=first),
        await gateway.post(LOGIN, json=wrong_login(), headers=first),
    ]
    assert [r.status_code for r in responses] == [401, 401, 422, 422, 401]
    assert responses[-1].headers["ratelimit-policy"] == '"credentials";q=5;w=60'
    assert responses[-1].headers["x-ratelimit-remaining"] == "0"
    refused = await gateway.post(LOGIN, json=wrong_login(), headers=first)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "12"
    assert refused.json()["error"]["retry_after_s"] == 12
    # Another client behind the same gateway has its own budget.
    other = await gateway.post(
        LOGIN, json=wrong_login(), headers={"X-Forwarded-For": "198.51.100.2"}
    )
    assert other.status_code == 401


async def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(
    start: Start, limited_settings: Callable[..., Settings]
) -> None:
    app = await start(create_auth(limited_settings()))
    attacker = app.client("203.0.113.9")
    statuses = []
    for i in range(6):
        spoofed = {"X-Forwarded-For": f"192.0.2.{i}, 127.0.0.1"}
        statuses.append(
            (await attacker.post(LOGIN, json=wrong_login(), headers=spoofed)).status_code
        )
    assert statuses == [401] * 5 + [429]


async def test_loopback_is_not_exempt(
    start: Start, limited_settings: Callable[..., Settings]
) -> None:
    app = await start(create_auth(limited_settings()))
    local = app.client("127.0.0.1")
    statuses = [(await local.post(LOGIN, json=wrong_login())).status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]


async def test_probes_metrics_and_jwks_are_never_limited(
    start: Start, limited_settings: Callable[..., Settings]
) -> None:
    app = await start(create_auth(limited_settings(ratelimit_anonymous="1/minute")))
    client = app.client("198.51.100.1")
    for path in ["/healthz", "/readyz", "/metrics", "/api/v1/auth/.well-known/jwks.json"] * 3:
        response = await client.get(path)
        assert response.status_code == 200, path
        assert "x-ratelimit-limit" not in response.headers


async def test_allowlisted_networks_bypass_limits(
    start: Start, limited_settings: Callable[..., Settings]
) -> None:
    settings = limited_settings(ratelimit_allowlist="10.1.0.0/16,2001:db8::/32")
    app = await start(create_auth(settings))
    for address in ("10.1.2.3", "2001:db8::7"):
        internal = app.client(address)
        for _ in range(8):
            response = await internal.post(LOGIN, json=wrong_login())
            assert response.status_code == 401
            assert "x-ratelimit-limit" not in response.headers
    # Allowlisting is by client address, so it is reached through the gateway too.
    gateway = app.client("127.0.0.1")
    via = {"X-Forwarded-For": "10.1.9.9"}
    assert {
        (await gateway.post(LOGIN, json=wrong_login(), headers=via)).status_code for _ in range(8)
    } == {401}
    outsider = app.client("10.2.0.1")
    statuses = [(await outsider.post(LOGIN, json=wrong_login())).status_code for _ in range(6)]
    assert statuses[-1] == 429


async def test_the_internal_token_bypasses_limits(
    start: Start, limited_settings: Callable[..., Settings]
) -> None:
    secret = "internal-" + "x" * 24
    app = await start(create_auth(limited_settings(internal_token=secret)))
    client = app.client("198.51.100.1")
    for _ in range(8):
        response = await client.post(
            LOGIN, json=wrong_login(), headers={"X-Agora-Internal-Token": secret}
        )
        assert response.status_code == 401
        assert "x-ratelimit-limit" not in response.headers
    wrong = {"X-Agora-Internal-Token": secret[:-1] + "y"}
    statuses = [
        (await client.post(LOGIN, json=wrong_login(), headers=wrong)).status_code for _ in range(6)
    ]
    assert statuses == [401] * 5 + [429]


async def test_limits_can_be_switched_off(
    start: Start, limited_settings: Callable[..., Settings]
) -> None:
    app = await start(create_auth(limited_settings(ratelimit_enabled=False)))
    client = app.client("198.51.100.1")
    for _ in range(8):
        response = await client.post(LOGIN, json=wrong_login())
        assert response.status_code == 401
        assert "x-ratelimit-limit" not in response.headers


@pytest.mark.parametrize("path", ["/api/v1/auth/login/", "/api/v1/auth/login?x=1"])
async def test_path_variants_share_the_credentials_budget(
    start: Start, limited_settings: Callable[..., Settings], path: str
) -> None:
    app = await start(create_auth(limited_settings()))
    client = app.client("198.51.100.1")
    for _ in range(5):
        await client.post(LOGIN, json=wrong_login())
    response = await client.post(path, json=wrong_login())
    assert response.status_code == 429


async def test_clients_see_their_limit_through_any_http_client(
    start: Start,
    limited_settings: Callable[..., Settings],
    tokens: TokenFactory,
    make_user: Callable[[], str],
) -> None:
    """What a well-behaved client does: read Retry-After, wait, succeed."""
    app = await posts(start, limited_settings(ratelimit_user="2/second"), tokens)
    client = app.client()
    headers = bearer(tokens(make_user()))
    codes = [(await client.get(FEED, headers=headers)).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    refused = await client.get(FEED, headers=headers)
    wait = float(refused.headers["retry-after"])
    assert wait == 1
    await asyncio.sleep(wait)
    assert (await client.get(FEED, headers=headers)).status_code == 200


class FlakyResolver:
    """Fails its first key lookup (a key store that could not reload), then works."""

    def __init__(self, tokens: TokenFactory) -> None:
        self._resolver = tokens.resolver
        self.failures_left = 1

    async def public_key(self, kid: str) -> Any:
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("key store unavailable")
        return await self._resolver.public_key(kid)


async def test_a_verifier_failure_counts_the_request_as_anonymous(
    start: Start,
    limited_settings: Callable[..., Settings],
    tokens: TokenFactory,
    make_user: Callable[[], str],
) -> None:
    resolver = FlakyResolver(tokens)
    app = await start(create_posts(limited_settings(), key_resolver=resolver))
    response = await app.client().get(FEED, headers=bearer(tokens(make_user())))
    assert response.status_code == 200  # the route's own check succeeded
    assert response.headers["ratelimit-policy"] == '"anonymous";q=60;w=60'
    assert resolver.failures_left == 0
