"""The gateway's added latency: the same authenticated GET /api/v1/posts/{id}, straight to the
posts process and through Envoy (routing, JWT check, rate limits, access log, retries
armed), one wrk run each at 1 connection (the per-request cost, no queueing) and at
BENCH_CONNECTIONS (under load). Printed side by side.

    python -m benchmarks.gateway_bench     (needs wrk; `make bench` installs it)

Dependencies as in benchmarks.http_bench. Environment: BENCH_DURATION, BENCH_CONNECTIONS.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections import Counter
from http import HTTPStatus
from pathlib import Path

import httpx

from agora.config import DEFAULT_PORTS, Settings
from agora.db.migrate import upgrade_to_head
from agora.devstack.embedded import free_port
from agora.gateway.config import local_topology
from agora.gateway.process import envoy_argv, write_config
from benchmarks.http_bench import (
    CONNECTIONS,
    DURATION_S,
    WrkResult,
    auth_jwks_url,
    dependencies,
    process,
    service_env,
    wrk,
)


def main() -> int:
    if shutil.which("wrk") is None:
        print("the gateway benchmark needs wrk (apt-get install wrk)", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="agora-gateway-bench-"))
    results: dict[str, WrkResult] = {}
    with dependencies(workdir) as (database_url, redis_url):
        upgrade_to_head(database_url)
        ports = {name: free_port() for name in DEFAULT_PORTS}
        settings = Settings(
            gateway_http_port=free_port(),
            gateway_https_port=free_port(),
            gateway_admin_port=free_port(),
            gateway_client_rps=10_000_000,
            gateway_total_rps=10_000_000,
        )
        env = service_env(database_url, redis_url, auth_jwks_url(ports["auth"]))
        config = write_config(settings, local_topology({n: [p] for n, p in ports.items()}), workdir)
        serve = [sys.executable, "-m", "agora", "serve"]
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        gateway = f"http://127.0.0.1:{settings.gateway_http_port}"
        admin = f"http://127.0.0.1:{settings.gateway_admin_port}"
        with (
            process([*serve, "auth", "--port", str(ports["auth"])], env, workdir / "auth.log",
                    f"{urls['auth']}/readyz"),
            process([*serve, "posts", "--port", str(ports["posts"])], env, workdir / "posts.log",
                    f"{urls['posts']}/readyz"),
            process([*serve, "realtime", "--port", str(ports["realtime"])], env,
                    workdir / "realtime.log", f"{urls['realtime']}/readyz"),
            process(envoy_argv(config), env, workdir / "envoy.log", f"{admin}/ready"),
        ):  # fmt: skip
            token, post_id = _user_and_post(gateway)
            path = f"/api/v1/posts/{post_id}"
            for connections in (1, CONNECTIONS):
                for name, base in (("direct", urls["posts"]), ("gateway", gateway)):
                    wrk(f"{base}{path}", token, connections=connections)  # warm-up
                    results[f"{name} -c{connections}"] = wrk(
                        f"{base}{path}", token, connections=connections
                    )
    _report(results)
    _explain_refusals(workdir / "envoy.log")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _user_and_post(gateway: str) -> tuple[str, str]:
    credentials = {"username": "gateway_bench", "password": "correct-horse-battery"}
    with httpx.Client(base_url=gateway, timeout=10) as client:
        client.post(
            "/api/v1/auth/register", json={**credentials, "email": "gateway-bench@example.com"}
        ).raise_for_status()
        token = str(client.post("/api/v1/auth/login", json=credentials).json()["access_token"])
        created = client.post(
            "/api/v1/posts",
            json={"content": "Through the gateway and around it."},
            headers={"Authorization": f"Bearer {token}"},
        )
        return token, str(created.raise_for_status().json()["id"])


def _report(results: dict[str, WrkResult]) -> None:
    print(f"\nwrk, {DURATION_S}s per run, one run each (after a warm-up), same machine\n")
    print(f"{'GET /api/v1/posts/{id}':<28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>9}")
    for name, result in results.items():
        print(
            f"{name:<28}{result.requests_per_s:>10.0f}{result.p50_ms:>10.2f}"
            f"{result.p99_ms:>10.2f}{result.non_2xx:>9}"
        )
    for connections in (1, CONNECTIONS):
        direct, through = results[f"direct -c{connections}"], results[f"gateway -c{connections}"]
        print(
            f"\nadded by the gateway at -c{connections}: "
            f"p50 {through.p50_ms - direct.p50_ms:+.2f} ms, "
            f"p99 {through.p99_ms - direct.p99_ms:+.2f} ms"
        )


def _explain_refusals(envoy_log: Path) -> None:
    """What the non-2xx answers through the gateway were, from its access log."""
    kinds: Counter[str] = Counter()
    for line in envoy_log.read_text(errors="replace").splitlines():
        if '"agora.gateway.access"' in line:
            entry = json.loads(line)
            if entry["http.response.status_code"] >= HTTPStatus.MULTIPLE_CHOICES:
                kinds[
                    f"{entry['http.response.status_code']} {entry['gateway.response_flags']} "
                    f"{entry['gateway.response_code_details']}"
                ] += 1
    for kind, count in kinds.most_common(5):
        print(f"  gateway non-2xx: {count} x {kind}")


if __name__ == "__main__":
    sys.exit(main())
