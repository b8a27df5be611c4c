"""`python -m benchmarks.drain_bench`: a rolling restart of one posts instance under load.

200 clients (keep-alive) loop on GET /api/v1/posts/notifications; a "balancer" polls
/readyz every 200 ms like a load balancer's health check and, once it reads anything but
200, no client starts a new request on this instance (they would go to another). After
BENCH_LOAD_S seconds of load the instance gets SIGTERM. Printed per pre-drain delay: requests
in flight at the signal, requests that failed after being sent, connections refused (new
requests a balancer would have sent elsewhere), drain time (signal to exit) and exit code.

Then the held case: 200 requests held in flight by a table lock for BENCH_HOLD_S seconds
while SIGTERM arrives: how many complete, and how long the drain takes.

Environment: BENCH_CLIENTS (200), BENCH_LOAD_S (3), BENCH_HOLD_S (2).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import httpx
import psycopg

from agora.db.migrate import upgrade_to_head
from agora.devstack.embedded import free_port
from benchmarks.http_bench import auth_jwks_url, dependencies, service_env

CLIENTS = int(os.environ.get("BENCH_CLIENTS", "200"))
LOAD_S = float(os.environ.get("BENCH_LOAD_S", "3"))
HOLD_S = float(os.environ.get("BENCH_HOLD_S", "2"))
PATH = "/api/v1/posts/notifications"
TLS = ssl.create_default_context()


@dataclass
class Outcome:
    in_flight: int
    completed: int
    failed: int
    refused: int
    drain_s: float
    exit_code: int


def start(service: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "agora", "serve", service, "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{service} exited early; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == HTTPStatus.OK:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{service} not ready; see {log}")


async def _balancer(url: str, routed_away: asyncio.Event) -> None:
    """A load balancer's view: the instance is routed away from once it stops being ready."""
    async with httpx.AsyncClient(base_url=url, timeout=1) as probe:
        while True:
            try:
                if (await probe.get("/readyz")).status_code != HTTPStatus.OK:
                    break
            except httpx.HTTPError:
                break
            await asyncio.sleep(0.2)
    routed_away.set()


async def under_load(url: str, token: str, proc: subprocess.Popen[bytes]) -> Outcome:
    headers = {"Authorization": f"Bearer {token}"}
    routed_away = asyncio.Event()
    in_flight = completed = failed = refused = 0

    async def client() -> None:
        # One client (one keep-alive connection) per worker: httpx's shared pool gets slow
        # with hundreds of connections and would measure itself, not the server. They share
        # one TLS context: building one per client costs ~50 ms of CPU each.
        async with httpx.AsyncClient(base_url=url, timeout=60, verify=TLS) as http:
            await run(http)

    async def run(http: httpx.AsyncClient) -> None:
        nonlocal in_flight, completed, failed, refused
        while not routed_away.is_set():
            in_flight += 1
            try:
                response = await http.get(PATH, headers=headers)
            except httpx.ConnectError:
                refused += 1  # never reached the instance
            except httpx.HTTPError:
                failed += 1
            else:
                completed += response.status_code == HTTPStatus.OK
                failed += response.status_code != HTTPStatus.OK
            finally:
                in_flight -= 1

    watcher = asyncio.create_task(_balancer(url, routed_away))
    clients = [asyncio.create_task(client()) for _ in range(CLIENTS)]
    await asyncio.sleep(LOAD_S)
    at_signal, before = in_flight, completed
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    await asyncio.gather(*clients)
    code = await asyncio.to_thread(proc.wait, 65)
    drain_s = time.monotonic() - signalled
    await watcher
    print(f"  {before / LOAD_S:.0f} req/s before the signal", flush=True)
    return Outcome(at_signal, completed, failed, refused, drain_s, code)


async def held(url: str, token: str, proc: subprocess.Popen[bytes], database_url: str) -> Outcome:
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=CLIENTS + 10)
    with psycopg.connect(database_url) as lock:
        lock.execute("LOCK TABLE notifications IN ACCESS EXCLUSIVE MODE")
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
            requests = [
                asyncio.create_task(http.get(PATH, headers=headers)) for _ in range(CLIENTS)
            ]
            await asyncio.sleep(1.5)  # all sent and waiting in the server
            signalled = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(HOLD_S)
            lock.rollback()
            responses = await asyncio.gather(*requests, return_exceptions=True)
    code = await asyncio.to_thread(proc.wait, 65)
    drain_s = time.monotonic() - signalled
    ok = sum(isinstance(r, httpx.Response) and r.status_code == HTTPStatus.OK for r in responses)
    return Outcome(CLIENTS, ok, CLIENTS - ok, 0, drain_s, code)


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="agora-drain-bench-"))
    results: list[tuple[str, Outcome]] = []
    with dependencies(workdir, scratch_db="agora_drain_bench") as (database_url, redis_url):
        upgrade_to_head(database_url)
        auth_port = free_port()
        env = service_env(
            database_url,
            redis_url,
            auth_jwks_url(auth_port),
            AGORA_DB_POOL_MAX_SIZE="10",
            AGORA_DB_ACQUIRE_TIMEOUT_S="30",
            AGORA_DB_COMMAND_TIMEOUT_S="30",
        )
        auth = start("auth", auth_port, env, workdir / "auth.log")
        try:
            auth_url = f"http://127.0.0.1:{auth_port}"
            credentials = {"username": "drain_bench", "password": "correct-horse-battery"}
            httpx.post(
                f"{auth_url}/api/v1/auth/register", json={**credentials, "email": "d@example.com"}
            ).raise_for_status()
            login = httpx.post(f"{auth_url}/api/v1/auth/login", json=credentials)
            token = login.raise_for_status().json()["access_token"]
            for delay in ("0", "2"):
                port = free_port()
                proc = start(
                    "posts",
                    port,
                    {**env, "AGORA_SHUTDOWN_DELAY_S": delay},
                    workdir / f"p{port}.log",
                )
                outcome = asyncio.run(under_load(f"http://127.0.0.1:{port}", token, proc))
                results.append((f"continuous load, AGORA_SHUTDOWN_DELAY_S={delay}", outcome))
            port = free_port()
            proc = start("posts", port, env, workdir / f"p{port}.log")
            outcome = asyncio.run(held(f"http://127.0.0.1:{port}", token, proc, database_url))
            results.append((f"{CLIENTS} held in flight {HOLD_S:g}s, delay 0", outcome))
        finally:
            auth.send_signal(signal.SIGTERM)
            auth.wait(timeout=65)
    print(f"\nrolling restart of one posts instance, {CLIENTS} clients, one run each\n")
    print(
        f"{'scenario':<46}{'in flight':>10}{'ok':>8}{'failed':>8}{'refused':>9}"
        f"{'drain s':>9}{'exit':>6}"
    )
    for name, o in results:
        print(
            f"{name:<46}{o.in_flight:>10}{o.completed:>8}{o.failed:>8}{o.refused:>9}"
            f"{o.drain_s:>9.2f}{o.exit_code:>6}"
        )
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
