"""The system under test: `agora up --replicas N` in production settings, started when no
gateway answers, plus extra gateway processes in front of the same instances.

Extra gateways are the honest answer to the 20,000-descriptor cap per process: production
runs several gateways behind a load balancer anyway, and each one here renders the same
template for the same instances (``agora.gateway``), only on its own ports.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess  # nosec B404 # runs our own CLI and the packaged envoy, never a shell
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

from agora.config import ServiceName, Settings
from agora.devstack.embedded import EmbeddedServers
from agora.gateway.certs import ensure_dev_certificate
from agora.gateway.config import local_topology
from agora.gateway.process import envoy_argv, write_config
from agora.resilience.remote import STATE_FILE

EXTRA_GATEWAY_FIRST_PORT = 18443  # HTTPS of gateway 2, 3, ...; HTTP and admin follow


class StackError(RuntimeError):
    """The system could not be found or started; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Ports:
    """Where the started system listens. The defaults are the contract ports; a run beside
    other stacks (other engineers' e2e tests bind those) moves the first instances to
    ``service_base``, +1, +2 (`agora up --port-base`) and the extra gateways to
    ``extra_gateway_first`` onward. The first gateway's ports come from AGORA_GATEWAY_*_PORT."""

    service_base: int | None = None
    extra_gateway_first: int = EXTRA_GATEWAY_FIRST_PORT

    def env(self) -> dict[str, str]:
        """The services verify tokens against auth's JWKS, which moves with auth's port."""
        if self.service_base is None:
            return {}
        jwks = f"http://127.0.0.1:{self.service_base}/api/v1/auth/.well-known/jwks.json"
        return {"AGORA_AUTH_JWKS_URL": jwks}

    def up_args(self) -> list[str]:
        return [] if self.service_base is None else ["--port-base", str(self.service_base)]


@dataclass
class Stack:
    settings: Settings
    gateways: list[str] = field(default_factory=list)
    admins: list[str] = field(default_factory=list)  # each gateway's admin endpoint
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    up_pid: int | None = None  # `agora up`, when started here
    # What names this run's own servers on a command line (for the CPU accounting): the
    # embedded PostgreSQL's data directory, the embedded Redis's address.
    markers: list[str] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes] + ([self.up_pid] if self.up_pid else [])


def gateway_ready(admin_port: int) -> bool:
    try:
        return (
            httpx.get(f"http://127.0.0.1:{admin_port}/ready", timeout=1).status_code
            == HTTPStatus.OK
        )
    except httpx.HTTPError:
        return False


def production_env(workdir: Path, database_url: str, redis_url: str) -> dict[str, str]:
    """Production settings for every process: a key-encryption key kept in ``workdir`` (the
    signing keys it encrypts outlive one run), the gateway's certificate, JSON logs."""
    key_file = workdir / "loadtest-key-encryption-key"
    if not key_file.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        key_file.write_bytes(Fernet.generate_key())
        key_file.chmod(0o600)
    tls = ensure_dev_certificate(workdir / "tls")
    env = {key: value for key, value in os.environ.items()}
    env.setdefault("AGORA_KEY_ENCRYPTION_KEY", key_file.read_text().strip())
    env.update(
        {
            "AGORA_ENV": "production",
            # The gateway runs on this host: the services believe X-Forwarded-For from it only.
            "AGORA_TRUSTED_PROXIES": "127.0.0.1/32,::1/128",
            "AGORA_DATABASE_URL": database_url,
            "AGORA_REDIS_URL": redis_url,
            "AGORA_GATEWAY_TLS_CERT_FILE": str(tls.cert_file),
            "AGORA_GATEWAY_TLS_KEY_FILE": str(tls.key_file),
        }
    )
    return env


def _wait(
    predicate: Callable[[], bool], timeout_s: float, process: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if process.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise StackError(f"the system exited ({process.returncode}) while starting:\n{tail}")
        time.sleep(0.5)
    raise StackError(f"the system was not ready after {timeout_s:.0f}s; see {log}")


def instance_ports(workdir: Path) -> dict[ServiceName, list[int]]:
    state = json.loads((workdir / STATE_FILE).read_text())
    ports: dict[ServiceName, list[int]] = {"auth": [], "posts": [], "realtime": []}
    for instance in state["instances"]:
        service = instance["name"].split("#")[0]
        if service in ports:
            ports[service].append(int(instance["url"].rsplit(":", 1)[1]))
    return ports


def metrics_urls(workdir: Path) -> list[str]:
    """Every instance's ``/metrics`` as `agora up` in ``workdir`` recorded them; none for a
    system started elsewhere."""
    if not (workdir / STATE_FILE).exists():
        return []
    ports = instance_ports(workdir)
    return [f"http://127.0.0.1:{port}/metrics" for each in ports.values() for port in each]


def _start_extra_gateway(
    stack: Stack, workdir: Path, index: int, log_dir: Path, *, first_port: int
) -> None:
    https = first_port + 3 * (index - 2)
    settings = stack.settings.model_copy(
        update={
            "gateway_https_port": https,
            "gateway_http_port": https + 1,
            "gateway_admin_port": https + 2,
        }
    )
    topology = local_topology(instance_ports(workdir))
    config = write_config(settings, topology, log_dir / f"gw{index}")
    log = log_dir / f"gateway-{index}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603  # nosec B603 # packaged envoy, our config
            envoy_argv(config), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    stack.processes.append(process)
    _wait(lambda: gateway_ready(https + 2), 60, process, log)
    stack.gateways.append(f"https://127.0.0.1:{https}")
    stack.admins.append(f"http://127.0.0.1:{https + 2}")


@contextmanager
def running_stack(
    settings: Settings,
    *,
    workdir: Path,
    replicas: int,
    gateways: int,
    log_dir: Path,
    ports: Ports | None = None,
) -> Iterator[Stack]:
    """The running system if its gateway answers (then AGORA_DATABASE_URL must name its
    database), else one started here and stopped afterwards."""
    ports = ports or Ports()
    embedded = EmbeddedServers(workdir=workdir)
    up: subprocess.Popen[bytes] | None = None
    extra: list[subprocess.Popen[bytes]] = []
    try:
        if gateway_ready(settings.gateway_admin_port):
            if settings.database_url is None:
                raise StackError(
                    "a system is already running: set AGORA_DATABASE_URL (and AGORA_REDIS_URL) "
                    "to its database, or stop it and let `make loadtest` start one"
                )
            stack = Stack(settings, processes=extra)
        else:
            database_url = settings.database_url or embedded.start_postgres()
            redis_url = settings.redis_url or embedded.start_redis()
            env = production_env(workdir, database_url, redis_url)
            env.update(ports.env())
            stack = Stack(
                settings.model_copy(
                    update={
                        "database_url": database_url,
                        "redis_url": redis_url,
                        "env": "production",
                        "gateway_tls_cert_file": env["AGORA_GATEWAY_TLS_CERT_FILE"],
                        "gateway_tls_key_file": env["AGORA_GATEWAY_TLS_KEY_FILE"],
                    }
                ),
                processes=extra,
            )
            log = log_dir / "agora-up.log"
            with log.open("wb") as out:
                up = subprocess.Popen(  # noqa: S603  # nosec B603 # our own CLI
                    [
                        sys.executable,
                        "-m",
                        "agora",
                        "up",
                        "--replicas",
                        str(replicas),
                        "--workdir",
                        str(workdir),
                        *ports.up_args(),
                    ],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            stack.up_pid = up.pid
            stack.markers.append(str(workdir))
            if embedded.redis_url is not None:
                stack.markers.append(embedded.redis_url.split("//", 1)[1].rsplit("/", 1)[0])
            _wait(lambda: b"Agora is up" in log.read_bytes(), 300, up, log)
        stack.gateways.append(f"https://127.0.0.1:{settings.gateway_https_port}")
        stack.admins.append(f"http://127.0.0.1:{settings.gateway_admin_port}")
        for index in range(2, gateways + 1):
            _start_extra_gateway(
                stack, workdir, index, log_dir, first_port=ports.extra_gateway_first
            )
        yield stack
    finally:
        for process in extra:
            process.terminate()
            process.wait(timeout=30)
        if up is not None:
            up.send_signal(signal.SIGINT)
            try:
                up.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
                up.wait()  # reaped, so no zombie (and no ResourceWarning) outlives the run
        embedded.stop()
