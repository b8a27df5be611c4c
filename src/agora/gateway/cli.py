"""``agora gateway render``: the gateway configuration for a deployment, from the template."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, get_args

import typer

from agora.config import ConfigError, ServiceName, load_settings

gateway_app = typer.Typer(help="The API gateway (Envoy) in front of the services.")


def _parse_upstreams(values: list[str]) -> dict[ServiceName, tuple[str, int]]:
    known = get_args(ServiceName)
    chosen: dict[ServiceName, tuple[str, int]] = {}
    for value in values:
        service, _, address = value.partition("=")
        host, _, port = address.rpartition(":")
        if service not in known or not host or not port.isdigit():
            raise ConfigError(
                f"--upstream {value!r}: expected SERVICE=HOST:PORT, e.g. posts=posts:8081"
            )
        chosen[service] = (host, int(port))  # type: ignore[index]
    return chosen


@gateway_app.command("render")
def render(
    upstream: Annotated[
        list[str] | None,
        typer.Option(
            help="SERVICE=HOST:PORT; default auth=auth:8080, posts=posts:8081, "
            "realtime=realtime:8082 (every address a name resolves to is an instance)"
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default: stdout)")
    ] = None,
    validate: Annotated[bool, typer.Option(help="Check it with `envoy --mode validate`")] = True,
) -> None:
    """Render the gateway's Envoy configuration for containers (services by DNS name, listeners
    on 0.0.0.0), from the environment's AGORA_* settings."""
    from agora.gateway.config import Endpoint, container_topology, render_config
    from agora.gateway.process import resolve_tls, validate_config

    try:
        settings = load_settings()
        hosts = {
            name: Endpoint(*target) for name, target in _parse_upstreams(upstream or []).items()
        }
        text = render_config(
            settings, container_topology(hosts), resolve_tls(settings, Path(".agora"))
        )
        if output is not None:
            output.write_text(text, encoding="utf-8")
            if validate:
                validate_config(output)
        else:
            sys.stdout.write(text)
    except ConfigError as exc:
        typer.secho(f"agora: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
