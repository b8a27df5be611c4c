"""`agora up` owns its working directory: a second one there is refused before it touches
anything, and the embedded PostgreSQL and Redis are supervised like the services (restarted on
the same address, announced). Binds the contract ports: run under
``flock /tmp/agora-contract-ports.lock``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from agora.devstack.embedded import port_is_free
from tests.conftest import FAST_HASH
from tests.e2e.test_agora_up import CONTRACT_PORTS, GATEWAY_PORTS, _pid_listening_on, _wait_for

pytestmark = pytest.mark.e2e


def _readiness(port: int) -> str | None:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
    except httpx.HTTPError:
        return None
    return str(response.json().get("status")) if response.status_code == 200 else None


def _all_ok() -> bool:
    return all(_readiness(port) == "ok" for port in CONTRACT_PORTS)


def _redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _up(workdir: Path, env: dict[str, str], out: Path) -> subprocess.Popen[bytes]:
    with out.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "agora", "up", "--workdir", str(workdir)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.mark.timeout(420)
def test_a_second_up_is_refused_and_embedded_servers_are_restarted(  # noqa: PLR0915
    tmp_path: Path,
) -> None:
    busy = [port for port in CONTRACT_PORTS + GATEWAY_PORTS if not port_is_free(port)]
    assert not busy, f"the contract ports {busy} must be free for `agora up`"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGORA_")}
    env.update({f"AGORA_{k.upper()}": str(v) for k, v in FAST_HASH.items()})
    env["AGORA_HEALTH_CHECK_INTERVAL_S"] = "1"
    workdir = tmp_path / "state"
    log = tmp_path / "first.log"
    first = _up(workdir, env, log)
    try:
        _wait_for(lambda: b"Agora is up" in log.read_bytes(), 180, "agora up", log, first)
        found = re.search(r"Redis \(embedded\): (redis://\S+)", log.read_text())
        assert found is not None, log.read_text()
        redis_url = found.group(1)
        pid_file = workdir / "postgres" / "postmaster.pid"
        postmaster = pid_file.read_text().splitlines()
        # The summary wraps the long socket URL; postmaster.pid names the socket and port.
        database_url = f"host={postmaster[4]} port={postmaster[3]} user=postgres dbname=agora"
        _wait_for(_all_ok, 30, "every service ready", log, first)

        # The second one, in the same directory: refused at once, the first untouched.
        started = time.monotonic()
        second = subprocess.run(
            [sys.executable, "-m", "agora", "up", "--workdir", str(workdir)],
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )
        refused_in = time.monotonic() - started
        said = " ".join((second.stdout + second.stderr).decode(errors="replace").split())
        print(  # noqa: T201  # the measured figure is this test's report (pytest -s)
            f"\nsecond agora up: exit {second.returncode} in {refused_in:.1f}s: {said.strip()}"
        )
        assert second.returncode == 1
        assert f"already running in {workdir}" in said
        assert f"pid {first.pid}" in said
        assert "starting embedded" not in said  # it touched nothing
        time.sleep(2)  # what used to kill the first one's Redis happened by now
        assert _redis_answers(redis_url)
        assert _all_ok()

        # Embedded Redis killed: restarted on the same port, announced, services ok again.
        os.kill(_pid_listening_on(int(redis_url.rsplit(":", 1)[1].split("/")[0])), signal.SIGKILL)
        _wait_for(
            lambda: "embedded Redis (port" in log.read_text() and "is back on" in log.read_text(),
            60,
            "the Redis restart",
            log,
            first,
        )
        assert re.search(r"agora: embedded Redis \(port \d+\) died; restarting", log.read_text())
        assert _redis_answers(redis_url)
        _wait_for(_all_ok, 30, "every service ok after the Redis restart", log, first)

        # Embedded PostgreSQL killed: the same.
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
        assert row is not None
        os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGKILL)
        _wait_for(
            lambda: "embedded PostgreSQL is back" in log.read_text(),
            90,
            "the PostgreSQL restart",
            log,
            first,
        )
        assert "embedded PostgreSQL (socket in" in log.read_text()
        with psycopg.connect(database_url) as conn:
            again = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
        assert again is not None
        assert again[0] > row[0]
        _wait_for(_all_ok, 60, "every service ok after the PostgreSQL restart", log, first)
    finally:
        first.send_signal(signal.SIGINT)
        code = first.wait(timeout=90)
    print(  # noqa: T201  # the measured figure is this test's report (pytest -s)
        log.read_text(errors="replace")[-2000:]
    )
    assert code == 0, log.read_text(errors="replace")
