"""An S3 stand-in for pgBackRest: moto_server behind an Envoy TLS listener for `localhost`.

pgBackRest talks to S3 over TLS only and checks the certificate's DNS name, so moto (plain
HTTP) gets a real TLS terminator in front, with the development certificate as its CA file.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agora.gateway.certs import ensure_dev_certificate
from tests.conftest import free_port

ENVOY = """
static_resources:
  listeners:
  - address: {{socket_address: {{address: 127.0.0.1, port_value: {tls_port}}}}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": "{tls_type}"
          common_tls_context:
            tls_certificates:
            - certificate_chain: {{filename: {cert}}}
              private_key: {{filename: {key}}}
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: s3
          cluster: moto
  clusters:
  - name: moto
    type: STATIC
    load_assignment:
      cluster_name: moto
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}
"""
TLS_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"


@dataclass(frozen=True)
class S3Stack:
    endpoint: str
    ca_file: Path
    bucket: str = "agora-backups"
    key_id: str = "testing"
    secret: str = "testing-secret-key"


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


@contextmanager
def s3_stack(workdir: Path) -> Iterator[S3Stack]:
    tls = ensure_dev_certificate(workdir / "tls")
    for path in (workdir, workdir / "tls", tls.cert_file):  # pgBackRest reads the CA file
        path.chmod(0o755 if path.is_dir() else 0o644)
    moto_port, tls_port = free_port(), free_port()
    bindir = Path(sys.executable).parent
    moto = subprocess.Popen(
        [str(bindir / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    config = workdir / "envoy.yaml"
    config.write_text(
        ENVOY.format(
            tls_type=TLS_TYPE,
            tls_port=tls_port,
            port=moto_port,
            cert=tls.cert_file,
            key=tls.key_file,
        )
    )
    envoy_bin = shutil.which("envoy") or str(bindir / "envoy")
    envoy = subprocess.Popen(
        [envoy_bin, "-c", str(config), "--disable-hot-restart", "-l", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_port(moto_port, moto)
        _wait_port(tls_port, envoy)
        yield S3Stack(f"https://localhost:{tls_port}", tls.cert_file)
    finally:
        _stop(envoy)
        _stop(moto)
