"""Two real posts processes share one user's 100 requests a minute (the limit lives in
Redis, so it holds whichever instance serves)."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import Cluster

# 100 per hour rather than per minute: the same budget, but one request's worth refills in
# 36 s instead of 0.6 s, so the count below is exact however slow the machine is.
USER_LIMIT = {"AGORA_RATELIMIT_USER": "100/hour"}


def test_two_posts_instances_share_a_users_limit(cluster: Cluster) -> None:
    auth = cluster.start("auth")
    one = cluster.start("posts", extra_env=USER_LIMIT)
    two = cluster.start("posts", extra_env=USER_LIMIT)
    credentials = {"username": "limited", "password": "correct horse battery"}
    httpx.post(
        f"{auth.url}/api/v1/auth/register", json={**credentials, "email": "l@example.com"}
    ).raise_for_status()
    login = httpx.post(f"{auth.url}/api/v1/auth/login", json=credentials).raise_for_status()
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

    with httpx.Client(headers=headers, timeout=10) as client:
        remaining = []
        for i in range(100):
            instance = one if i % 2 else two
            response = client.get(f"{instance.url}/api/v1/posts/feed")
            assert response.status_code == 200, response.text
            remaining.append(int(response.headers["x-ratelimit-remaining"]))
        assert remaining == list(range(99, -1, -1))  # one budget, counted by both processes
        for instance in (one, two):
            refused = client.get(f"{instance.url}/api/v1/posts/feed")
            assert refused.status_code == 429, refused.text
            assert refused.json()["error"]["code"] == "rate_limited"
            assert int(refused.headers["retry-after"]) >= 1
