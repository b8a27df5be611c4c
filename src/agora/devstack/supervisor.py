"""Runs and watches the service processes of `agora up`.

Children get their own session, so Ctrl-C reaches only the supervisor, which then stops them
in order with SIGTERM (their graceful drain) and waits. A child that dies is restarted with a
backoff, and every restart is announced: nothing is restarted silently.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess  # nosec B404 # starts our own service processes, never a shell
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from types import FrameType
from typing import Literal

import httpx

from agora.config import ServiceName

PR_SET_PDEATHSIG = 1
STOP_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 60.0


# Loaded here, in the parent: the child between fork and exec only makes the one call (loading a
# library there could wait on a lock another thread of the supervisor held at the fork).
try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:  # pragma: no cover - not glibc: children are still stopped by stop_all
    _LIBC = None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """If the supervisor is killed outright, its children get SIGTERM instead of lingering."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


ProcessKind = (
    ServiceName
    | Literal["gateway", "prometheus", "alertmanager", "node-exporter", "postgres-exporter"]
)


@dataclass
class Instance:
    service: ProcessKind
    index: int
    port: int
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_restart_at: float = 0.0
    # For a process other than `agora serve` (the gateway): its command and readiness path.
    argv: list[str] | None = None
    ready_path: str = "/readyz"
    # Monitoring processes: their own variables, and a log file instead of the console.
    extra_env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None

    @property
    def name(self) -> str:
        return f"{self.service}#{self.index}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Supervisor:
    env: Mapping[str, str]
    instances: list[Instance]
    stopping: bool = False
    _say: list[str] = field(default_factory=list)

    def install_signal_handlers(self) -> None:
        def request_stop(signum: int, _: FrameType | None) -> None:
            if not self.stopping:
                print(f"\nagora: {signal.Signals(signum).name} received, stopping…", flush=True)
            self.stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

    def spawn(self, instance: Instance) -> None:
        argv = instance.argv or [
            sys.executable,
            "-m",
            "agora",
            "serve",
            instance.service,
            "--port",
            str(instance.port),
        ]
        log = instance.log_path.open("ab") if instance.log_path else None
        try:
            instance.process = subprocess.Popen(  # noqa: S603  # nosec B603 # own interpreter or a tool, fixed argv
                argv,
                env=self.instance_env(instance),
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509  # one prctl call, nothing that locks
                stdout=log,
                stderr=log,
            )
        finally:
            if log is not None:
                log.close()

    def instance_env(self, instance: Instance) -> dict[str, str]:
        """Every instance gets its own id (probes, presence), prefixed with the
        configured one or the host name. Auth instances on one host share its cores for
        password hashing unless a concurrency is configured: each taking one hash per core
        put six Argon2id hashes on two cores, and every other request waited behind them."""
        env = dict(self.env)
        prefix = env.get("AGORA_INSTANCE_ID") or socket.gethostname()
        env["AGORA_INSTANCE_ID"] = f"{prefix}-{instance.service}-{instance.index}"
        if instance.service == "auth" and not env.get("AGORA_PASSWORD_HASH_CONCURRENCY"):
            sharing = sum(1 for other in self.instances if other.service == "auth")
            cores = len(os.sched_getaffinity(0))
            env["AGORA_PASSWORD_HASH_CONCURRENCY"] = str(max(1, cores // max(1, sharing)))
        env.update(instance.extra_env)
        return env

    def start(self, instance: Instance) -> None:
        self.spawn(instance)
        self.wait_ready(instance)

    def wait_ready(self, instance: Instance, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.stopping:
            assert instance.process is not None
            code = instance.process.poll()
            if code is not None:
                raise RuntimeError(f"{instance.name} exited with code {code} during start-up")
            try:
                ready_url = f"{instance.url}{instance.ready_path}"
                if httpx.get(ready_url, timeout=1.0).status_code == HTTPStatus.OK:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        if not self.stopping:
            raise RuntimeError(f"{instance.name} was not ready within {timeout_s:.0f}s")

    def watch(self, also: Callable[[], None] | None = None) -> None:
        """Until asked to stop: restart (loudly, with backoff) any instance that died; ``also``
        runs on every round (the embedded servers' watch)."""
        while not self.stopping:
            if also is not None:
                also()
            now = time.monotonic()
            for instance in self.instances:
                process = instance.process
                if process is None:
                    if now >= instance.next_restart_at:
                        print(
                            f"agora: restarting {instance.name} on port {instance.port} "
                            f"(restart {instance.restarts})",
                            flush=True,
                        )
                        self.spawn(instance)
                    continue
                code = process.poll()
                if code is not None:
                    instance.restarts += 1
                    delay = min(30.0, 2.0 ** min(instance.restarts, 5))
                    instance.process = None
                    instance.next_restart_at = now + delay
                    print(
                        f"agora: {instance.name} (port {instance.port}) exited with code "
                        f"{code}; restarting in {delay:.0f}s",
                        file=sys.stderr,
                        flush=True,
                    )
            time.sleep(0.5)

    def stop_all(self) -> int:
        """SIGTERM every child (they drain), wait up to 60 s, then SIGKILL what is left."""
        running = [i for i in self.instances if i.process and i.process.poll() is None]
        for instance in running:
            assert instance.process is not None
            instance.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        unclean = 0
        for instance in running:
            assert instance.process is not None
            try:
                code = instance.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(
                    f"agora: {instance.name} did not stop in time; killing it",
                    file=sys.stderr,
                    flush=True,
                )
                instance.process.kill()
                code = instance.process.wait()
            # Exporters have no SIGTERM handler: dying of the signal we sent is their clean stop.
            if code != 0 and not (instance.argv and code == -signal.SIGTERM):
                unclean += 1
        return unclean
