"""SIGTERM while requests are still arriving, on real ``agora serve`` processes: a request the
server has accepted is answered (its own result, or 503 with ``Retry-After``), never dropped,
and the drain log counts what happened."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Cluster, ServiceProcess
from tests.e2e.test_realtime import bearer, register_and_login

pytestmark = pytest.mark.e2e

ARRIVING = 200


def outcome(response: httpx.Response | BaseException) -> str:
    if isinstance(response, httpx.Response):
        return str(response.status_code)
    return type(response).__name__


def log_record(proc: ServiceProcess, message: str) -> dict[str, Any]:
    for line in proc.logs().splitlines():
        if line.startswith("{"):
            record: dict[str, Any] = json.loads(line)
            if record.get("message") == message:
                return record
    raise AssertionError(f"no {message!r} line in the log:\n{proc.logs()}")


def answered_or_told_to_retry(responses: list[httpx.Response | BaseException]) -> list[str]:
    """What went wrong: anything but a 200, or a 503 that says when to retry."""
    wrong = []
    for response in responses:
        if isinstance(response, httpx.Response) and response.status_code == 200:
            continue
        if (
            isinstance(response, httpx.Response)
            and response.status_code == 503
            and response.headers.get("retry-after")
            and response.json()["error"]["code"] == "unavailable"
        ):
            continue
        wrong.append(outcome(response))
    return wrong


async def test_sigterm_10_ms_after_a_burst_at_a_fresh_instance_answers_every_request(
    cluster: Cluster,
) -> None:
    auth = cluster.start("auth")
    async with httpx.AsyncClient(base_url=auth.url, timeout=10) as client:
        _, token = await register_and_login(client, "arriving")
    posts = cluster.start("posts")  # just started: it has never verified a token
    limits = httpx.Limits(max_connections=ARRIVING + 10, max_keepalive_connections=ARRIVING)
    async with httpx.AsyncClient(base_url=posts.url, timeout=30, limits=limits) as client:
        requests = [
            asyncio.create_task(client.get("/api/v1/posts/notifications", headers=bearer(token)))
            for _ in range(ARRIVING)
        ]
        await asyncio.sleep(0.01)
        posts.process.send_signal(signal.SIGTERM)
        responses = await asyncio.gather(*requests, return_exceptions=True)
    code = await asyncio.to_thread(posts.process.wait, 60)
    print(  # noqa: T201  # the measured figure is this test's report (pytest -s)
        f"\n{ARRIVING} arriving at SIGTERM: {dict(Counter(map(outcome, responses)))}"
    )
    drained = log_record(posts, "drained")
    assert answered_or_told_to_retry(responses) == [], drained
    assert code == 0, posts.logs()
    assert drained["clean"] is True
    assert drained["cut_off"] == drained["past_deadline"] == 0
    assert drained["closed_before_a_request"] == 0
    assert drained["served"] >= ARRIVING  # every answer counted (plus the readiness probes)
    draining = log_record(posts, "draining")
    assert draining["in_flight"] <= draining["connections"]  # requests, not connections


@contextlib.contextmanager
def silent_listener() -> Iterator[str]:
    """A JWKS URL that accepts connections and never answers (the kernel's backlog does)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/api/v1/auth/.well-known/jwks.json"


async def test_a_request_cut_off_while_its_token_is_checked_is_answered_503(
    cluster: Cluster,
) -> None:
    auth = cluster.start("auth")
    async with httpx.AsyncClient(base_url=auth.url, timeout=10) as client:
        _, token = await register_and_login(client, "unchecked")
    with silent_listener() as jwks_url:
        # The key fetch hangs (2 s client timeout), longer than the drain may take.
        posts = cluster.start(
            "posts",
            extra_env={
                "AGORA_AUTH_JWKS_URL": jwks_url,
                "AGORA_JWKS_REFETCH_COOLDOWN_S": "0",
                "AGORA_SHUTDOWN_TIMEOUT_S": "0.5",
            },
        )
        async with httpx.AsyncClient(base_url=posts.url, timeout=30) as client:
            held = [
                asyncio.create_task(
                    client.get("/api/v1/posts/notifications", headers=bearer(token))
                )
                for _ in range(5)
            ]
            await asyncio.sleep(0.3)
            posts.process.send_signal(signal.SIGTERM)
            responses = await asyncio.gather(*held, return_exceptions=True)
        code = await asyncio.to_thread(posts.process.wait, 30)
    print(  # noqa: T201  # the measured figure is this test's report (pytest -s)
        f"\ncut off in the identity step: {dict(Counter(map(outcome, responses)))}"
    )
    assert code == 1  # cut off: not a clean drain
    outcomes = Counter(map(outcome, responses))
    # Cut off: 503 with Retry-After. One may see its key fetch time out (2 s) within
    # uvicorn's last second of grace and get its own answer, a 401. None is left unanswered.
    assert outcomes["503"] >= 4
    assert outcomes["503"] + outcomes["401"] == 5, outcomes
    assert answered_or_told_to_retry([r for r in responses if outcome(r) != "401"]) == []
    drained = log_record(posts, "drained")
    assert drained["past_deadline"] == 5
    assert drained["cut_off"] == outcomes["503"]
