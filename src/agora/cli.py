"""The ``agora`` command: run the system, one service, migrations, key rotation, demo data."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agora.backup.cli import backup_app
from agora.config import DEFAULT_PORTS, ConfigError, ServiceName, Settings, load_settings
from agora.gameday.cli import gameday_app
from agora.gateway.chaos_cli import chaos_app
from agora.gateway.cli import gateway_app

if TYPE_CHECKING:
    from agora.resilience.remote import Outcome

app = typer.Typer(
    name="agora",
    help="Agora, a social backend: auth, posts and realtime services on PostgreSQL and Redis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="Manage the access-token signing keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
breakers_app = typer.Typer(
    help="Circuit breakers of every running instance (needs AGORA_ADMIN_TOKEN).",
    no_args_is_help=True,
)
app.add_typer(breakers_app, name="breakers")
app.add_typer(gateway_app, name="gateway", no_args_is_help=True)
app.add_typer(backup_app, name="backup")
app.add_typer(chaos_app, name="chaos")
app.add_typer(gameday_app, name="gameday")


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
    port: Annotated[
        int | None, typer.Option(help="Port (default: 8080 auth, 8081 posts, 8082 realtime)")
    ] = None,
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


@app.command()
def up(
    replicas: Annotated[int, typer.Option(min=1, max=10, help="Instances of each service")] = 1,
    workdir: Annotated[Path, typer.Option(help="Where embedded PostgreSQL/Redis keep data")] = Path(
        ".agora"
    ),
    monitoring: Annotated[
        bool,
        typer.Option(
            help="Also Prometheus, Alertmanager, node_exporter, postgres_exporter and a local "
            "alert webhook, on loopback (install them with `make monitoring-tools`)"
        ),
    ] = False,
    port_base: Annotated[
        int | None,
        typer.Option(
            min=1024,
            max=65000,
            help="First instances' ports from here instead of the contract's 8080-8082 (a "
            "second stack beside the first; set AGORA_AUTH_JWKS_URL and the gateway ports "
            "to match)",
        ),
    ] = None,
) -> None:
    """Run the whole system in the foreground: dependencies, migrations, every service.

    PostgreSQL and Redis come from AGORA_DATABASE_URL / AGORA_REDIS_URL, or are started
    embedded under ./.agora/ when those are unset. Ctrl-C stops everything gracefully.
    """
    from agora.devstack.up import run

    raise typer.Exit(
        run(
            _settings(),
            replicas=replicas,
            workdir=workdir.resolve(),
            monitoring=monitoring,
            port_base=port_base,
        )
    )


@app.command()
def seed(
    users: Annotated[int, typer.Option(min=1, help="Users to create")] = 100,
    posts: Annotated[
        int, typer.Option(min=0, help="Posts to create, spread over the users")
    ] = 1000,
    follows: Annotated[int, typer.Option(min=0, help="Accounts each user follows")] = 10,
    celebrities: Annotated[
        int, typer.Option(min=0, help="First users, each followed by a third of everyone")
    ] = 0,
) -> None:
    """Fill the database with demo users, follows and posts (a progress bar shows each step)."""
    from rich.progress import Progress

    from agora.devstack.seed import SEED_PASSWORD
    from agora.devstack.seed import seed as run_seed

    settings = _settings()
    try:
        settings.require_database_url()
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    with Progress() as progress:
        result = asyncio.run(
            run_seed(
                settings,
                users=users,
                posts=posts,
                follows_per_user=follows,
                celebrities=celebrities,
                progress=progress,
            )
        )
    typer.echo(
        f"seeded {result.users} users ({result.username_prefix}_0 … "
        f"{result.username_prefix}_{result.users - 1}, password {SEED_PASSWORD!r}), "
        f"{result.follows} follows, {result.posts} posts"
    )


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Add a new signing key; older public keys stay in the JWKS until their tokens expire."""
    from agora.db import Database
    from agora.services.auth.keys import activation_delay_s, rotate_signing_key

    settings = _settings()
    try:
        url = settings.require_database_url()
    except ConfigError as exc:
        raise _fail(str(exc)) from None

    async def rotate() -> str:
        db = Database(url, min_size=1, max_size=1)
        await db.connect()
        try:
            return (await rotate_signing_key(db, settings)).kid
        finally:
            await db.close()

    kid = asyncio.run(rotate())
    typer.echo(
        f"new signing key {kid}: published now, signing in {activation_delay_s(settings):.0f}s; "
        "the previous key stays published until its last token expires"
    )


@keys_app.command("revoke")
def keys_revoke(
    kid: Annotated[str, typer.Argument(help="the key id (the JWT header's kid)")],
) -> None:
    """Emergency: stop trusting a signing key now. It leaves the JWKS, never signs again, and
    every running instance refuses its tokens within seconds (told over Redis)."""
    from agora.db import Database
    from agora.gateway.config import jwks_cache_s
    from agora.redis.client import create_redis
    from agora.security.key_revocation import announce_key_revocation
    from agora.services.auth.keys import UnknownKey, revoke_signing_key

    if not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", kid):
        raise _fail(f"{kid!r} is not a key id: they are base64url thumbprints like the JWKS's")
    settings = _settings()
    try:
        # Both before anything changes: a revocation nobody hears of is not an emergency stop.
        url, redis_url = settings.require_database_url(), settings.require_redis_url()
    except ConfigError as exc:
        raise _fail(str(exc)) from None

    async def revoke() -> tuple[str, int | None, str | None]:
        db = Database(url, min_size=1, max_size=1)
        await db.connect()
        try:
            done = await revoke_signing_key(db, settings, kid)
        finally:
            await db.close()
        redis = create_redis(redis_url, socket_timeout_s=settings.redis_socket_timeout_s)
        try:
            heard = await announce_key_revocation(redis, settings.key_events_channel, kid)
        except Exception as exc:  # the database change stands; say how to finish
            return done.replacement_kid or "", None, repr(exc)
        finally:
            await redis.aclose()
        return done.replacement_kid or "", heard, None

    try:
        replacement, heard, error = asyncio.run(revoke())
    except UnknownKey:
        raise _fail(
            f"no signing key {kid!r}; the kids are listed in the JWKS "
            "(/api/v1/auth/.well-known/jwks.json) and in each token's header"
        ) from None
    if heard is None:
        typer.secho(
            f"agora: key {kid} is revoked in the database, but the running instances were not "
            f"told ({error}): they stop trusting it at their next key reload (auth within "
            f"{settings.signing_key_refresh_s:.0f}s, posts and realtime within 300s). Run this "
            "command again once Redis is reachable to tell them now.",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(
        f"signing key {kid} revoked: out of the JWKS, refused by the {heard} listening "
        "instances from now on"
        + (f"; new signing key {replacement} signs at once" if replacement else "")
        + f". The gateway's JWKS cache may pass its tokens for up to {jwks_cache_s(settings)}s; "
        "the services refuse them."
    )


@keys_app.command("encrypt")
def keys_encrypt() -> None:
    """Encrypt every stored signing key with the first AGORA_KEY_ENCRYPTION_KEY."""
    from agora.db import Database
    from agora.services.auth.keys import encrypt_signing_keys

    settings = _settings()
    try:
        url = settings.require_database_url()
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    if not settings.key_encryption_key:
        raise _fail("AGORA_KEY_ENCRYPTION_KEY is not set (make one: agora keys new-encryption-key)")

    async def encrypt() -> tuple[int, int]:
        db = Database(url, min_size=1, max_size=1)
        await db.connect()
        try:
            return await encrypt_signing_keys(db, settings)
        finally:
            await db.close()

    try:
        total, plain = asyncio.run(encrypt())
    except ValueError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"{total} signing keys encrypted with the first key ({plain} were unencrypted)")


@keys_app.command("new-encryption-key")
def keys_new_encryption_key() -> None:
    """Print a fresh value for AGORA_KEY_ENCRYPTION_KEY."""
    from cryptography.fernet import Fernet

    typer.echo(Fernet.generate_key().decode())


TargetsOption = Annotated[
    list[str] | None,
    typer.Option("--target", help="Instance base URL (repeatable); default: `agora up`'s"),
]
WorkdirOption = Annotated[Path, typer.Option(help="`agora up`'s workdir (its instances.json)")]


def _breaker_targets(settings: Settings, target: list[str] | None, workdir: Path) -> list[str]:
    from agora.resilience.remote import targets_from_state

    if settings.admin_token is None:
        raise _fail("AGORA_ADMIN_TOKEN is not set (the same token the instances run with)")
    if target:
        return target
    try:
        return targets_from_state(workdir)
    except LookupError as exc:
        raise _fail(str(exc)) from None


def _report(outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        typer.secho(
            f"{outcome.target}: {outcome.detail}",
            fg=None if outcome.ok else typer.colors.RED,
            err=not outcome.ok,
        )
    if not all(outcome.ok for outcome in outcomes):
        raise typer.Exit(1)


@breakers_app.command("reset")
def breakers_reset(
    name: Annotated[str, typer.Argument(help="postgres, redis or jwks")],
    target: TargetsOption = None,
    workdir: WorkdirOption = Path(".agora"),
) -> None:
    """Close breaker NAME on every instance now (after fixing the dependency)."""
    from agora.resilience.remote import reset_everywhere

    settings = _settings()
    targets = _breaker_targets(settings, target, workdir)
    assert settings.admin_token is not None
    _report(reset_everywhere(targets, name, settings.admin_token.get_secret_value()))


@breakers_app.command("list")
def breakers_list(target: TargetsOption = None, workdir: WorkdirOption = Path(".agora")) -> None:
    """Show every instance's breaker states."""
    from agora.resilience.remote import list_everywhere

    settings = _settings()
    targets = _breaker_targets(settings, target, workdir)
    assert settings.admin_token is not None
    _report(list_everywhere(targets, settings.admin_token.get_secret_value()))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


__all__ = ["app", "main"]
