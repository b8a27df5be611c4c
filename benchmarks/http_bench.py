"""`make bench`: an authenticated GET /api/v1/posts/{id} through posts' full stack, against a raw
ASGI callable serving the same JSON on the same server — one run, printed side by side.

Uses AGORA_DATABASE_URL / AGORA_REDIS_URL when set, else the machine's PostgreSQL and Redis on
127.0.0.1 (a scratch database ``agora_bench``), else embedded ones. Needs ``wrk``.
Environment: BENCH_DURATION (seconds, default 10), BENCH_CONNECTIONS (default 64).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

from agora.db.migrate import upgrade_to_head
from agora.devstack.embedded import EmbeddedServers, free_port

DURATION_S = int(os.environ.get("BENCH_DURATION", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
# The bench user sends thousands of requests a minute: the limiter still runs on every
# request (its cost is part of the stack), but no limit is reached, so wrk measures the
# service, not 429s. `python -m benchmarks.ratelimit_bench` measures the limiter itself.
BENCH_LIMITS = {
    "AGORA_RATELIMIT_USER": "100000000/minute",
    "AGORA_RATELIMIT_CREDENTIALS": "1000/minute",
}


def auth_jwks_url(auth_port: int) -> str:
    return f"http://127.0.0.1:{auth_port}/api/v1/auth/.well-known/jwks.json"


def service_env(
    database_url: str, redis_url: str, jwks_url: str, **overrides: str
) -> dict[str, str]:
    """Environment of the benchmarked ``agora serve`` processes: the scratch database and
    Redis, JSON logs, the JWKS to trust, and per-user limits out of reach (a few users drive
    the load)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGORA_")}
    env.update(
        {
            "AGORA_DATABASE_URL": database_url,
            "AGORA_REDIS_URL": redis_url,
            "AGORA_LOG_FORMAT": "json",
            "AGORA_AUTH_JWKS_URL": jwks_url,
            **BENCH_LIMITS,
        }
    )
    env.update(overrides)
    return env


@dataclass
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def dependencies(workdir: Path, scratch_db: str = "agora_bench") -> Iterator[tuple[str, str]]:
    embedded = EmbeddedServers(workdir=workdir)
    drop_scratch = f"DROP DATABASE IF EXISTS {scratch_db} WITH (FORCE)"
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    scratch = False
    try:
        database_url = os.environ.get("AGORA_DATABASE_URL")
        if not database_url and _reachable(5432):
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(drop_scratch)
                conn.execute(f"CREATE DATABASE {scratch_db}")
            scratch = True
            database_url = f"postgresql://postgres@127.0.0.1:5432/{scratch_db}"
        database_url = database_url or embedded.start_postgres()
        redis_url = os.environ.get("AGORA_REDIS_URL")
        if not redis_url and _reachable(6379):
            redis_url = "redis://127.0.0.1:6379/14"
        redis_url = redis_url or embedded.start_redis()
        yield database_url, redis_url
    finally:
        embedded.stop()
        if scratch:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(drop_scratch)


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path, ready_url: str) -> Iterator[None]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{args} exited early; see {log}")
            try:
                if httpx.get(ready_url, timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"{args} not ready; see {log}")
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def wrk(url: str, token: str | None, *, connections: int = CONNECTIONS) -> WrkResult:
    threads = min(2, connections)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{DURATION_S}s", "--latency", url]
    if token:
        command[1:1] = ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non_2xx_match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return WrkResult(
        requests_per_s=rps,
        p50_ms=_latency(out, "50%"),
        p99_ms=_latency(out, "99%"),
        non_2xx=int(non_2xx_match.group(1)) if non_2xx_match else 0,
    )


def _latency(out: str, percentile: str) -> float:
    match = re.search(rf"^\s*{re.escape(percentile)}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no {percentile} latency:\n{out}")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def main() -> int:
    if shutil.which("wrk") is None:
        print("make bench needs wrk (apt-get install wrk)", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="agora-bench-"))
    with dependencies(workdir) as (database_url, redis_url):
        upgrade_to_head(database_url)
        auth_port, posts_port, raw_port = free_port(), free_port(), free_port()
        env = service_env(database_url, redis_url, auth_jwks_url(auth_port))
        serve = [sys.executable, "-m", "agora", "serve"]
        auth_url, posts_url = f"http://127.0.0.1:{auth_port}", f"http://127.0.0.1:{posts_port}"
        with (
            process(
                [*serve, "auth", "--port", str(auth_port)],
                env,
                workdir / "auth.log",
                f"{auth_url}/readyz",
            ),
            process(
                [*serve, "posts", "--port", str(posts_port)],
                env,
                workdir / "posts.log",
                f"{posts_url}/readyz",
            ),
        ):
            credentials = {"username": "bench_user", "password": "correct-horse-battery"}
            httpx.post(
                f"{auth_url}/api/v1/auth/register",
                json={**credentials, "email": "bench@example.com"},
            ).raise_for_status()
            login = httpx.post(f"{auth_url}/api/v1/auth/login", json=credentials)
            token = login.raise_for_status().json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            post = httpx.post(
                f"{posts_url}/api/v1/posts",
                headers=headers,
                json={"content": "Benchmarking Agora, one request at a time."},
            )
            post_url = f"{posts_url}/api/v1/posts/{post.raise_for_status().json()['id']}"
            body = httpx.get(post_url, headers=headers).raise_for_status().content
            wrk(post_url, token)  # warm-up: JWKS fetched, pools filled
            full = wrk(post_url, token)
        body_file = workdir / "body.json"
        body_file.write_bytes(body)
        raw_cmd = [
            sys.executable,
            "-m",
            "benchmarks.raw_asgi",
            "--port",
            str(raw_port),
            "--body-file",
            str(body_file),
        ]
        raw_url = f"http://127.0.0.1:{raw_port}/"
        with process(raw_cmd, env, workdir / "raw.log", raw_url):
            raw = wrk(raw_url, None)
    _report(full, raw)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _report(full: WrkResult, raw: WrkResult) -> None:
    print(f"\nwrk -t2 -c{CONNECTIONS} -d{DURATION_S}s, one run each, same machine\n")
    print(f"{'target':<44}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>9}")
    rows = (
        ("(a) GET /api/v1/posts/{id}, full stack, auth", full),
        ("(b) raw ASGI callable, same JSON", raw),
    )
    for name, result in rows:
        print(
            f"{name:<44}{result.requests_per_s:>10.0f}{result.p50_ms:>10.2f}"
            f"{result.p99_ms:>10.2f}{result.non_2xx:>9}"
        )
    print(f"\nratio a/b (req/s): {full.requests_per_s / raw.requests_per_s:.3f}")


if __name__ == "__main__":
    sys.exit(main())
