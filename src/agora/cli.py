"""The ``agora`` command: run the system, one service, migrations, key rotation, demo data."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from agora.config import DEFAULT_PORTS, ConfigError, ServiceName, Settings, load_settings

app = typer.Typer(
    name="agora",
    help="Agora, a social backend: auth, posts and realtime services on PostgreSQL and Redis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="Manage the access-token signing keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        typer.secho(f"agora: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


def _fail(message: str) -> typer.Exit:
    typer.secho(f"agora: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(2)


@app.command()
def serve(
    service: Annotated[ServiceName, typer.Argument(help="auth, posts or realtime")],
    port: Annotated[int | None, typer.Option(help="Port (default: 8080 auth, 8081 posts, "
                                                   "8082 realtime)")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
) -> None:
    """Run one service process in the foreground (what a container runs)."""
    from agora.server import serve as run_server

    settings = _settings()
    try:
        run_server(service, settings, host=host, port=port or DEFAULT_PORTS[service])
    except ConfigError as exc:
        raise _fail(str(exc)) from None


@app.command()
def migrate() -> None:
    """Apply database migrations up to the latest (idempotent; safe from several processes)."""
    from agora.db.migrate import current_revision, upgrade_to_head

    settings = _settings()
    try:
        url = settings.require_database_url()
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    upgrade_to_head(url)
    typer.echo(f"database at revision {current_revision(url)}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


__all__ = ["app", "main"]
