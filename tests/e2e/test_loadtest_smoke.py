"""`make loadtest`'s harness end to end, as a 30-second smoke: a seeded data set, `agora up`
in production settings behind its gateway, 100 k6 users each from its own address with the
production rate limits on, the scripts' thresholds, and the harness's lost-write check.

Starts `agora up`: run it by hand under `flock /tmp/agora-contract-ports.lock`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agora.devstack.embedded import port_is_free
from tests.conftest import FAST_HASH
from tests.e2e.test_agora_up import CONTRACT_PORTS, GATEWAY_PORTS

pytestmark = pytest.mark.e2e

# 30 s with 10 s of arrivals; tokens refreshed every 12 s so the run exercises refresh too.
# One instance of each service: three (what `make loadtest` runs) took 84-139 s here on a
# busy machine, over the budget of `make test`; the fan-out still crosses Redis pub/sub.
SMOKE_ARGS = ["--duration", "30s", "--ramp", "10s", "--refresh-after", "12", "--replicas", "1"]
SMOKE_ARGS += ["--seed-users", "500", "--seed-posts", "5000"]
# Half the users come back on a remembered session (one refresh), half sign in.
SMOKE_ARGS += ["--returning", "0.5"]


@pytest.mark.timeout(240)
@pytest.mark.usefixtures("clean_state")
def test_smoke_run_meets_its_thresholds_and_loses_no_write(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    busy = [port for port in CONTRACT_PORTS + GATEWAY_PORTS if not port_is_free(port)]
    assert not busy, f"the contract ports {busy} must be free for `agora up`"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGORA_")}
    env.update(
        {
            "AGORA_DATABASE_URL": database_url,
            "AGORA_REDIS_URL": redis_url,
            "AGORA_EVENTS_CHANNEL": f"agora:events:loadtest-{os.getpid()}",
            # The machine's PostgreSQL is shared: small pools. Cheap hashing keeps 100 logins
            # from taking the run's CPU (production hashing is `make loadtest`'s).
            "AGORA_DB_POOL_MAX_SIZE": "4",
            "AGORA_DB_POOL_MIN_SIZE": "1",
            **{f"AGORA_{k.upper()}": str(v) for k, v in FAST_HASH.items()},
        }
    )
    results, workdir = tmp_path / "results", tmp_path / "state"
    places = ["--workdir", str(workdir), "--results", str(results)]
    run = subprocess.run(
        [sys.executable, "-m", "agora.loadtest", "smoke", *SMOKE_ARGS, *places],
        env=env,
        capture_output=True,
        text=True,
        timeout=220,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    (summary_file,) = results.glob("smoke-*/summary.json")
    summary = json.loads(summary_file.read_text())
    failed = [t for t in summary["thresholds"] if not t["ok"]]
    assert failed == [], output
    assert summary["lost_writes"] == 0
    metrics = summary["metrics"]
    # 100 users at 0.5 req/s for ~30 s, each user below its 100/min limit: no 429 at all.
    assert summary["requests"] > 1_000, output
    assert summary["rate_limited"] == 0, output
    assert metrics["posts_created"]["values"]["count"] > 20
    assert metrics["post_delivery_ms"]["values"]["count"] > 0  # followers' sockets heard them
    remembered = json.loads((workdir / "loadtest-users.json").read_text())["remembered"]
    returning = sum(1 for token in remembered[:100] if token)
    assert 30 < returning < 70, returning
    # Every returning user resumed (the checks' threshold above) without its password.
    assert metrics["http_req_duration{group:login}"]["values"]["count"] == 100 - returning
    assert metrics["http_req_duration{group:refresh}"]["values"]["count"] >= 100 + returning
    assert "lost writes (harness)" in run.stdout
    # The instances' own cache counters over the run: every feed read looked its page up.
    feed = summary["caches"]["feed"]
    assert feed["lookups"] >= metrics["http_req_duration{group:feed}"]["values"]["count"]
    assert 0.0 <= feed["hit_ratio"] <= 1.0
    assert "cache hit ratio: " in run.stdout
    assert list(results.glob("smoke-*/report-0.html")), "no HTML report"
