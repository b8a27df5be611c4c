"""0 lost writes: every post k6 got a 201 for is in PostgreSQL and in its author's followers'
home feeds, read back through the gateway as those followers.

Feeds are read for a sample of (post, follower) pairs — each one costs a real login — from
loopback addresses of their own, so the per-address login limit treats each as a client.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import ssl
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from agora.db.pool import asyncpg_dsn
from agora.devstack.seed import SEED_PASSWORD

LEDGER_LINE = re.compile(r'level=info msg="(\{.*\})"')
FEED_SAMPLE = 20
FEED_PAGES = 20
RETRIES = 5


@dataclass(frozen=True)
class Integrity:
    acknowledged: int
    missing_in_database: int
    feeds_checked: int
    missing_in_feeds: int
    # Feeds that could not be read at all (the system kept failing): not proof of a loss,
    # but no proof of its absence either.
    unverified: int = 0
    # 201s k6 counted that its ledger does not name: unverifiable, so counted as lost.
    unledgered: int = 0

    @property
    def lost_writes(self) -> int:
        return self.missing_in_database + self.missing_in_feeds + self.unledgered

    @property
    def proven(self) -> bool:
        return self.unverified == 0


def acknowledged_posts(ledgers: list[Path]) -> dict[str, str]:
    """post id → author id, from k6's console output (one JSON line per 201)."""
    posts: dict[str, str] = {}
    for ledger in ledgers:
        if not ledger.exists():
            continue
        for line in ledger.read_text(errors="replace").splitlines():
            match = LEDGER_LINE.search(line)
            if match:
                entry = json.loads(match.group(1).replace('\\"', '"'))
                posts[entry["created"]] = entry["author"]
    return posts


async def _patient(
    client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    """A request retried while the system is still catching up after the run (timeouts,
    429, 5xx), a few times with growing waits; the last answer stands."""
    for attempt in range(RETRIES):
        try:
            response = await client.request(method, url, **kwargs)
        except httpx.TransportError:
            if attempt == RETRIES - 1:
                raise
        else:
            if (
                response.status_code != HTTPStatus.TOO_MANY_REQUESTS
                and response.status_code < HTTPStatus.INTERNAL_SERVER_ERROR
            ):
                return response
            if attempt == RETRIES - 1:
                return response
        await asyncio.sleep(2**attempt)
    raise AssertionError("unreachable")


async def _in_feed(client: httpx.AsyncClient, username: str, post_id: str) -> bool:
    login = await _patient(
        client,
        "POST",
        "/api/v1/auth/login",
        json={"username": username, "password": SEED_PASSWORD},
    )
    login.raise_for_status()
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    cursor: str | None = None
    for _ in range(FEED_PAGES):
        params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        page = await _patient(client, "GET", "/api/v1/posts/feed", params=params, headers=headers)
        page.raise_for_status()
        body = page.json()
        if any(item["id"] == post_id for item in body["items"]):
            return True
        cursor = body["next_cursor"]
        if cursor is None:
            return False
    return False


async def check(
    database_url: str, gateway: str, ledgers: list[Path], cafile: Path | None
) -> Integrity:
    posts = acknowledged_posts(ledgers)
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        found = await conn.fetch(
            "SELECT id::text FROM posts WHERE id = ANY($1::uuid[])", list(posts)
        )
        stored = {row["id"] for row in found}
        sample = random.sample(sorted(stored), min(FEED_SAMPLE, len(stored)))  # nosec B311
        pairs = []
        for post_id in sample:
            follower = await conn.fetchval(
                "SELECT u.username FROM follows f JOIN users u ON u.id = f.follower_id "
                "WHERE f.followee_id = $1::uuid ORDER BY random() LIMIT 1",
                posts[post_id],
            )
            if follower is not None:
                pairs.append((follower, post_id))
    finally:
        await conn.close()
    trust: ssl.SSLContext | bool = True
    if cafile is not None:
        trust = ssl.create_default_context(cafile=str(cafile))
    missing_in_feeds = unverified = 0
    for index, (follower, post_id) in enumerate(pairs):
        # Each follower's login comes from an address of its own (127.250.x.y).
        address = f"127.250.{index // 250}.{index % 250 + 1}"
        transport = httpx.AsyncHTTPTransport(local_address=address, verify=trust)
        async with httpx.AsyncClient(base_url=gateway, transport=transport, timeout=30) as client:
            try:
                in_feed = await _in_feed(client, follower, post_id)
            except httpx.HTTPError:
                unverified += 1
                continue
            missing_in_feeds += not in_feed
    return Integrity(
        acknowledged=len(posts),
        missing_in_database=len(posts) - len(stored),
        feeds_checked=len(pairs),
        missing_in_feeds=missing_in_feeds,
        unverified=unverified,
    )


def check_sync(
    database_url: str, gateway: str, ledgers: list[Path], cafile: Path | None
) -> Integrity:
    return asyncio.run(check(database_url, gateway, ledgers, cafile))
