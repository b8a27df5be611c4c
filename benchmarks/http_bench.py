"""`make bench`: posts' full stack beside the commit before the request-path work (a git
worktree of ``BENCH_BASELINE``, default e323fa2, run from its own source tree with
``PYTHONPATH``) and beside a raw ASGI callable serving the same JSON on the same server — one
run, printed side by side: req/s, server CPU per request and p99.

Rows: the authenticated cached ``GET /api/v1/posts/{id}``; a cache-miss read (the same GET
with a 1 ms post-cache TTL, so nearly every read loads from PostgreSQL and fills); and
``POST /api/v1/posts``. Each row runs this tree, the baseline twice, this tree again (A-B-B-A),
so a drift of the shared machine hits both alike; quote the ratios.

Uses AGORA_DATABASE_URL / AGORA_REDIS_URL when set, else the machine's PostgreSQL and Redis on
127.0.0.1 (a scratch database ``agora_bench``), else embedded ones. Needs ``wrk``.
Environment: BENCH_DURATION (seconds, default 10), BENCH_CONNECTIONS (default 64),
BENCH_BASELINE (a commit; empty: no baseline column), BENCH_REDIS_DB (default 14), BENCH_ROWS
(which rows, comma-separated from ``cached,miss,post``; default all: a one-change comparison,
say ``BENCH_BASELINE=<the commit before> BENCH_ROWS=cached``, need not wait for the others).

Column ``fallbacks``: the rate limiter's switches to its in-process fallback during that run
(read from the server's log). Each switch serves the next 5 s without the limiter's Redis
call, and in this tree without the one round trip too (the deletion mark and the cache are
then read on their own): a row with switches measured a different path, which the figures
alone would not show. The load average at the end is printed too.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import httpx
import psycopg

from agora.db.migrate import upgrade_to_head
from agora.devstack.embedded import EmbeddedServers, free_port

DURATION_S = int(os.environ.get("BENCH_DURATION", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
ROWS = os.environ.get("BENCH_ROWS", "cached,miss,post").split(",")
# The bench user sends thousands of requests a minute: the limiter still runs on every
# request (its cost is part of the stack), but no limit is reached, so wrk measures the
# service, not 429s. `python -m benchmarks.ratelimit_bench` measures the limiter itself.
BENCH_LIMITS = {
    "AGORA_RATELIMIT_USER": "100000000/minute",
    "AGORA_RATELIMIT_CREDENTIALS": "1000/minute",
    # Production's sampling (traces and access lines of hot routes at 10%), not
    # development's 100%: what a deployment pays per request.
    "AGORA_TRACE_SAMPLE_RATIO": "0.1",
    "AGORA_LOG_SAMPLE_RATIO": "0.1",
    # Five processes on a PostgreSQL shared with other work: small pools (the cached read
    # makes no query; the miss and the write need a few connections at -c64).
    "AGORA_DB_POOL_MIN_SIZE": "2",
    "AGORA_DB_POOL_MAX_SIZE": "20",
}
REDIS_DB = os.environ.get("BENCH_REDIS_DB", "14")


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
    requests: int = 0
    cpu_us_per_request: float = float("nan")
    fallbacks: int = 0  # the limiter's switches to its in-process fallback during the run


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
            redis_url = f"redis://127.0.0.1:6379/{REDIS_DB}"
        redis_url = redis_url or embedded.start_redis()
        yield database_url, redis_url
    finally:
        embedded.stop()
        if scratch:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(drop_scratch)


@contextmanager
def process(
    args: list[str], env: dict[str, str], log: Path, ready_url: str
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{args} exited early; see {log}")
            try:
                if httpx.get(ready_url, timeout=1).status_code < HTTPStatus.INTERNAL_SERVER_ERROR:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"{args} not ready; see {log}")
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def wrk(
    url: str,
    token: str | None,
    *,
    connections: int = CONNECTIONS,
    script: Path | None = None,
    server_pid: int | None = None,
) -> WrkResult:
    """One wrk run; with ``server_pid``, the server's CPU per request over the run."""
    threads = min(2, connections)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{DURATION_S}s", "--latency", url]
    if token:
        command[1:1] = ["-H", f"Authorization: Bearer {token}"]
    if script is not None:
        command[1:1] = ["-s", str(script)]
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603
    cpu = cpu_seconds(server_pid) - cpu_before if server_pid else float("nan")
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non_2xx_match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return WrkResult(
        requests_per_s=rps,
        p50_ms=_latency(out, "50%"),
        p99_ms=_latency(out, "99%"),
        non_2xx=int(non_2xx_match.group(1)) if non_2xx_match else 0,
        requests=total,
        cpu_us_per_request=cpu / total * 1e6 if total else float("nan"),
    )


def combined(first: WrkResult, second: WrkResult) -> WrkResult:
    """Two runs of one target as one: mean rate and latencies, CPU per request over both."""
    requests = first.requests + second.requests
    cpu_us = first.cpu_us_per_request * first.requests + second.cpu_us_per_request * second.requests
    return WrkResult(
        requests_per_s=(first.requests_per_s + second.requests_per_s) / 2,
        p50_ms=(first.p50_ms + second.p50_ms) / 2,
        p99_ms=(first.p99_ms + second.p99_ms) / 2,
        non_2xx=first.non_2xx + second.non_2xx,
        requests=requests,
        cpu_us_per_request=cpu_us / requests if requests else float("nan"),
        fallbacks=first.fallbacks + second.fallbacks,
    )


def _latency(out: str, percentile: str) -> float:
    match = re.search(rf"^\s*{re.escape(percentile)}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no {percentile} latency:\n{out}")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


BASELINE = os.environ.get("BENCH_BASELINE", "e323fa2")
REPO = Path(__file__).resolve().parents[1]
POST_SCRIPT = """wrk.method = "POST"
wrk.body = '{"content": "Benchmarking Agora, one write at a time."}'
wrk.headers["Content-Type"] = "application/json"
"""


def baseline_tree(ref: str) -> Path:
    """A git worktree of ``ref`` under /tmp (made once, reused by later runs)."""
    commit = subprocess.run(  # noqa: S603
        ["git", "-C", str(REPO), "rev-parse", "--short=12", ref],  # noqa: S607
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tree = Path(tempfile.gettempdir()) / f"agora-bench-baseline-{commit}"
    if not (tree / "src" / "agora").is_dir():
        subprocess.run(  # noqa: S603
            ["git", "-C", str(REPO), "worktree", "add", "--detach", "--force", str(tree), commit],  # noqa: S607
            check=True,
            capture_output=True,
        )
    return tree


@dataclass
class Row:
    name: str
    current: WrkResult
    baseline: WrkResult | None


def main() -> int:
    if shutil.which("wrk") is None:
        print("make bench needs wrk (apt-get install wrk)", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="agora-bench-"))
    base = baseline_tree(BASELINE) if BASELINE else None
    post_script = workdir / "post.lua"
    post_script.write_text(POST_SCRIPT)
    with dependencies(workdir) as (database_url, redis_url), contextlib.ExitStack() as stack:
        upgrade_to_head(database_url)
        auth_port = free_port()
        env = service_env(database_url, redis_url, auth_jwks_url(auth_port))
        serve = [sys.executable, "-m", "agora", "serve"]
        auth_url = f"http://127.0.0.1:{auth_port}"
        stack.enter_context(
            process(
                [*serve, "auth", "--port", str(auth_port)],
                env,
                workdir / "auth.log",
                f"{auth_url}/readyz",
            )
        )
        # (tree, cache TTL) -> (url, pid): this tree's posts and the baseline's, each with the
        # normal cache and with a 1 ms post-cache TTL (the cache-miss read).
        servers: dict[tuple[str, str], tuple[str, int]] = {}
        trees = {"current": None, **({"baseline": base} if base is not None else {})}
        for tree_name, tree in trees.items():
            for cache_name, ttl in (("cached", "600"), ("miss", "0.001")):
                port = free_port()
                tree_env = {**env, "AGORA_CACHE_POST_TTL_S": ttl}
                if tree is not None:
                    tree_env["PYTHONPATH"] = str(tree / "src")
                url = f"http://127.0.0.1:{port}"
                proc = stack.enter_context(
                    process(
                        [*serve, "posts", "--port", str(port)],
                        tree_env,
                        workdir / f"posts-{tree_name}-{cache_name}.log",
                        f"{url}/readyz",
                    )
                )
                servers[tree_name, cache_name] = url, proc.pid
        credentials = {"username": "bench_user", "password": "correct-horse-battery"}
        httpx.post(
            f"{auth_url}/api/v1/auth/register", json={**credentials, "email": "bench@example.com"}
        ).raise_for_status()
        login = httpx.post(f"{auth_url}/api/v1/auth/login", json=credentials)
        token = login.raise_for_status().json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        any_url = servers["current", "cached"][0]
        post = httpx.post(
            f"{any_url}/api/v1/posts",
            headers=headers,
            json={"content": "Benchmarking Agora, one request at a time."},
        )
        post_path = f"/api/v1/posts/{post.raise_for_status().json()['id']}"
        body = httpx.get(f"{any_url}{post_path}", headers=headers).raise_for_status().content

        def fallbacks(tree_name: str, cache_name: str) -> int:
            log_file = workdir / f"posts-{tree_name}-{cache_name}.log"
            return log_file.read_text(errors="replace").count("rate limiter falling back")

        def measure(tree_name: str, cache_name: str, path: str, script: Path | None) -> WrkResult:
            url, pid = servers[tree_name, cache_name]
            before = fallbacks(tree_name, cache_name)
            result = wrk(f"{url}{path}", token, script=script, server_pid=pid)
            result.fallbacks = fallbacks(tree_name, cache_name) - before
            return result

        for key in servers:  # warm-up: JWKS fetched, pools filled, caches loaded
            measure(*key, post_path, None)
        rows = measure_rows(
            measure, with_baseline=base is not None, post_path=post_path, post_script=post_script
        )
        raw = _raw_asgi(env, workdir, body)
    _report(rows, raw, BASELINE)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


Measure = Callable[[str, str, str, Path | None], WrkResult]
"""``measure(tree, cache, path, wrk script)``: one wrk run against that server."""


def measure_rows(
    measure: Measure, *, with_baseline: bool, post_path: str, post_script: Path
) -> list[Row]:
    rows: list[Row] = []
    for row, name, cache_name, path, script in (
        ("cached", "GET /api/v1/posts/{id}, cached", "cached", post_path, None),
        ("miss", "GET /api/v1/posts/{id}, cache miss", "miss", post_path, None),
        ("post", "POST /api/v1/posts", "cached", "/api/v1/posts", post_script),
    ):
        if row not in ROWS:
            continue
        if not with_baseline:
            rows.append(Row(name, measure("current", cache_name, path, script), None))
            continue
        # A-B-B-A: a drift of the machine (or the posts table growing under the write row)
        # during the four runs costs both trees alike.
        first = measure("current", cache_name, path, script)
        baseline = [measure("baseline", cache_name, path, script) for _ in range(2)]
        current = combined(first, measure("current", cache_name, path, script))
        rows.append(Row(name, current, combined(*baseline)))
    return rows


def _raw_asgi(env: dict[str, str], workdir: Path, body: bytes) -> WrkResult:
    """The raw ASGI callable serving ``body`` on the same uvicorn set-up, measured alike."""
    body_file = workdir / "body.json"
    body_file.write_bytes(body)
    raw_port = free_port()
    raw_cmd = [
        *(sys.executable, "-m", "benchmarks.raw_asgi", "--port", str(raw_port)),
        *("--body-file", str(body_file)),
    ]
    raw_url = f"http://127.0.0.1:{raw_port}/"
    with process(raw_cmd, env, workdir / "raw.log", raw_url) as raw_proc:
        return wrk(raw_url, None, server_pid=raw_proc.pid)


def _line(name: str, result: WrkResult) -> str:
    return (
        f"{name:<48}{result.requests_per_s:>9.0f}{result.cpu_us_per_request:>10.0f}"
        f"{result.p50_ms:>9.2f}{result.p99_ms:>9.2f}{result.non_2xx:>9}{result.fallbacks:>10}"
    )


def _report(rows: list[Row], raw: WrkResult, baseline: str) -> None:
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    runs = "two runs each (A-B-B-A), means" if baseline else "one run each"
    print(f"\nwrk -t2 -c{CONNECTIONS} -d{DURATION_S}s, {runs}, same machine, same run")
    print(f"load average at the end: {load}\n")
    columns = f"{'req/s':>9}{'CPU µs/r':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}"
    print(f"{'target':<48}{columns}{'fallbacks':>10}")
    for row in rows:
        print(_line(f"{row.name} (this tree)", row.current))
        if row.baseline is not None:
            print(_line(f"{row.name} ({baseline})", row.baseline))
    print(_line("raw ASGI callable, same JSON", raw))
    print()
    for row in rows:
        if row.baseline is None:
            continue
        speedup = row.current.requests_per_s / row.baseline.requests_per_s
        cpu = row.current.cpu_us_per_request / row.baseline.cpu_us_per_request
        print(f"{row.name}: {speedup:.2f}x req/s, {cpu:.2f}x CPU per request vs {baseline}")
    if not rows or not rows[0].name.endswith("cached"):
        return
    cached = rows[0].current
    print(
        f"cached GET vs raw ASGI: {cached.requests_per_s / raw.requests_per_s:.3f} of its req/s, "
        f"{cached.cpu_us_per_request / raw.cpu_us_per_request:.1f}x its CPU per request"
    )


if __name__ == "__main__":
    sys.exit(main())
