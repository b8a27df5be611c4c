"""`make bench-observability`: what logs + metrics + tracing cost on posts' full stack.

The same authenticated GET /api/v1/posts/{id} (JWT check, PostgreSQL read) is served by four
posts processes, measured in interleaved rounds (BENCH_ROUNDS, default 3) and printed side by
side, with req/s and the posts process's CPU time per request:

  (a) bare: no access log, no HTTP metrics, no tracing (the middleware's observation removed)
  (b) + JSON access line for every request + HTTP metrics
  (c) + tracing at 10% sampling, exported over OTLP/HTTP to a real receiver (a sink process)
  (d) production defaults: as (c), access lines of this hot route sampled at 10%

Environment as for `make bench` (BENCH_DURATION, BENCH_CONNECTIONS; AGORA_DATABASE_URL and
AGORA_REDIS_URL or the machine's servers). Needs ``wrk``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psutil

from agora.config import load_settings
from agora.db.migrate import upgrade_to_head
from agora.devstack.embedded import free_port
from agora.observability.middleware import RequestContextMiddleware
from agora.server import serve
from benchmarks.http_bench import CONNECTIONS, DURATION_S, WrkResult, dependencies, process, wrk

_CHILD_ARGC = 3  # a child process: argv is [script, role, port]


ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
VARIANTS = (
    ("(a) bare: no access log, metrics, tracing", "bare", {"AGORA_LOG_LEVEL": "WARNING"}),
    ("(b) + JSON access log (every request), metrics", "serve", {"AGORA_LOG_SAMPLE_RATIO": "1"}),
    (
        "(c) + tracing, 10% sampled, OTLP export",
        "serve",
        {"AGORA_LOG_SAMPLE_RATIO": "1", "AGORA_TRACE_SAMPLE_RATIO": "0.1", "OTLP": "1"},
    ),
    (
        "(d) as (c), hot-route access log at 10%",
        "serve",
        {"AGORA_LOG_SAMPLE_RATIO": "0.1", "AGORA_TRACE_SAMPLE_RATIO": "0.1", "OTLP": "1"},
    ),
)


def serve_bare(port: int) -> None:
    """posts with the access line and HTTP metrics removed (request ids and errors stay)."""

    def observe_nothing(*_: Any) -> None:
        return None

    RequestContextMiddleware._observe = observe_nothing  # type: ignore[method-assign,assignment]
    serve("posts", load_settings(), host="127.0.0.1", port=port)


def serve_sink(port: int) -> None:
    """An OTLP/HTTP endpoint that accepts and drops spans (what the exporter talks to)."""

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Sink).serve_forever()


def main() -> int:
    if shutil.which("wrk") is None:
        print("needs wrk (apt-get install wrk)", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="agora-obs-bench-"))
    results: list[tuple[str, Run]] = []
    with dependencies(workdir) as (database_url, redis_url):
        upgrade_to_head(database_url)
        auth_port, sink_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AGORA_", "OTEL_"))}
        env.update(
            {
                "AGORA_DATABASE_URL": database_url,
                "AGORA_REDIS_URL": redis_url,
                "AGORA_LOG_FORMAT": "json",
                # Five processes share one PostgreSQL (and, here, other users of it).
                "AGORA_DB_POOL_MAX_SIZE": "10",
                "AGORA_AUTH_JWKS_URL": f"http://127.0.0.1:{auth_port}/api/v1/auth/.well-known/jwks.json",
            }
        )
        me = [sys.executable, "-m", "benchmarks.observability_bench"]
        auth_url = f"http://127.0.0.1:{auth_port}"
        with (
            process(
                [*me, "sink", str(sink_port)],
                env,
                workdir / "sink.log",
                f"http://127.0.0.1:{sink_port}/",
            ),
            process(
                [sys.executable, "-m", "agora", "serve", "auth", "--port", str(auth_port)],
                env,
                workdir / "auth.log",
                f"{auth_url}/readyz",
            ),
        ):
            token = _token(auth_url)
            with ExitStack() as running:
                targets: list[tuple[str, str]] = []
                pids: list[int] = []
                for name, mode, extra in VARIANTS:
                    port = free_port()
                    variant_env = {**env, **{k: v for k, v in extra.items() if k != "OTLP"}}
                    if "OTLP" in extra:
                        variant_env["AGORA_OTLP_ENDPOINT"] = f"http://127.0.0.1:{sink_port}"
                    command = (
                        [*me, "bare", str(port)]
                        if mode == "bare"
                        else [sys.executable, "-m", "agora", "serve", "posts", "--port", str(port)]
                    )
                    url = f"http://127.0.0.1:{port}"
                    log = workdir / f"posts-{port}.log"
                    running.enter_context(process(command, variant_env, log, f"{url}/readyz"))
                    targets.append((name, url))
                    pids.append(_listener_pid(port))
                post_id = _create_post(targets[0][1], token)
                urls = [(name, f"{url}/api/v1/posts/{post_id}") for name, url in targets]
                for _, url in urls:  # warm-up: JWKS fetched, pools filled
                    _warm_up(url, token)
                # Rounds interleave the variants, so a neighbour's load on this shared machine
                # falls on all of them alike; each variant's median round is reported.
                runs: dict[str, list[Run]] = {name: [] for name, _ in urls}
                for _ in range(ROUNDS):
                    for (name, url), pid in zip(urls, pids, strict=True):
                        runs[name].append(_measure(url, token, pid))
                for name, _ in urls:
                    ordered = sorted(runs[name], key=lambda r: r.cpu_us)
                    results.append((name, ordered[len(ordered) // 2]))
    _report(results)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


@dataclass
class Run:
    wrk: WrkResult
    cpu_us: float  # CPU time of the posts process per request served


def _listener_pid(port: int) -> int:
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == "LISTEN" and conn.pid:
            return conn.pid
    raise RuntimeError(f"nothing listens on {port}")


def _measure(url: str, token: str, pid: int) -> Run:
    """req/s moves with whatever else the machine runs; CPU time per request much less."""
    server = psutil.Process(pid)
    before = sum(server.cpu_times()[:2])
    result = wrk(url, token)
    cpu_s = sum(server.cpu_times()[:2]) - before
    return Run(result, cpu_s / (result.requests_per_s * DURATION_S) * 1e6)


def _warm_up(url: str, token: str) -> None:
    command = ["wrk", "-t2", "-c16", "-d3s", "-H", f"Authorization: Bearer {token}", url]
    subprocess.run(command, capture_output=True, check=True)  # noqa: S603


def _token(auth_url: str) -> str:
    credentials = {"username": "obs_bench", "password": "correct-horse-battery"}
    httpx.post(f"{auth_url}/api/v1/auth/register", json={**credentials, "email": "obs@example.com"})
    login = httpx.post(f"{auth_url}/api/v1/auth/login", json=credentials).raise_for_status()
    token: str = login.json()["access_token"]
    return token


def _create_post(posts_url: str, token: str) -> str:
    response = httpx.post(
        f"{posts_url}/api/v1/posts",
        headers={"Authorization": f"Bearer {token}"},
        json={"content": "Measuring what observability costs."},
    )
    post_id: str = response.raise_for_status().json()["id"]
    return post_id


def _report(results: list[tuple[str, Run]]) -> None:
    print(f"\nwrk -t2 -c{CONNECTIONS} -d{DURATION_S}s, {ROUNDS} interleaved rounds, median round")
    print("GET /api/v1/posts/{id} on posts (JWT + PostgreSQL), one worker\n")
    print(
        f"{'variant':<48}{'req/s':>8}{'vs (a)':>8}{'CPU us/req':>12}{'vs (a)':>8}"
        f"{'p50 ms':>8}{'p99 ms':>8}{'non-2xx':>8}"
    )
    bare = results[0][1]
    for name, run in results:
        result = run.wrk
        print(
            f"{name:<48}{result.requests_per_s:>8.0f}"
            f"{result.requests_per_s / bare.wrk.requests_per_s:>8.3f}"
            f"{run.cpu_us:>12.0f}{run.cpu_us / bare.cpu_us:>8.3f}"
            f"{result.p50_ms:>8.2f}{result.p99_ms:>8.2f}{result.non_2xx:>8}"
        )
    print(
        "\nCPU us/req: user+system CPU time of the posts process / requests served; on a"
        "\nshared machine it moves far less than req/s. Implied single-core capacity:"
        "\n1e6 / CPU us/req."
    )


if __name__ == "__main__":
    if len(sys.argv) == _CHILD_ARGC and sys.argv[1] == "bare":
        serve_bare(int(sys.argv[2]))
    elif len(sys.argv) == _CHILD_ARGC and sys.argv[1] == "sink":
        serve_sink(int(sys.argv[2]))
    else:
        sys.exit(main())
