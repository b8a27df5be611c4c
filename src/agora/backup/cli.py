"""``agora backup``: init, run full|diff|incr|logical, list, restore, drill (docs/runbook.md)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import typer
from rich.console import Console

from agora.backup.pgbackrest import BackupError
from agora.backup.settings import BackupSettings, load_backup_settings
from agora.config import ConfigError

backup_app = typer.Typer(
    help="Encrypted backups (pgBackRest: local + S3), point-in-time restore, the restore drill.",
    no_args_is_help=True,
)
console = Console(stderr=True)
T = TypeVar("T")


def _fail(message: str) -> typer.Exit:
    typer.secho(f"agora backup: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(2)


def _guarded(step: str, action: Callable[[BackupSettings], T]) -> T:
    """Run ``action`` with a spinner and elapsed time; errors become one clear message."""
    try:
        settings = load_backup_settings()
        with _progress(step):
            return action(settings)
    except (ConfigError, BackupError) as exc:
        raise _fail(str(exc)) from None


@contextmanager
def _progress(step: str) -> Iterator[None]:
    started = time.monotonic()
    with console.status(f"{step}…"):
        yield
    console.print(f"{step}: done in {time.monotonic() - started:.1f}s")


@backup_app.command("init")
def init_command() -> None:
    """Write pgbackrest.conf, set archive_command, create the stanza in every repository."""
    from agora.backup.physical import init

    for line in _guarded("initialising", init):
        typer.echo(line)


@backup_app.command("run")
def run_command(
    kind: Annotated[
        Literal["full", "diff", "incr", "logical"],
        typer.Argument(help="full, diff or incr (pgBackRest, every repository), or logical"),
    ],
) -> None:
    """Take a physical backup (local, then S3) or the encrypted logical dump (S3)."""
    if kind == "logical":
        from agora.backup.logical import run_logical

        done = _guarded("logical dump", run_logical)
        typer.echo(
            f"logical dump {done.key}: {done.plain_bytes / 1e6:.1f} MB dumped, "
            f"{done.stored_bytes / 1e6:.1f} MB stored encrypted, in {done.seconds:.1f}s"
        )
        for key in done.expired:
            typer.echo(f"expired {key}")
        return
    from agora.backup.physical import run_backup

    took = _guarded(f"{kind} backup", lambda s: run_backup(s, kind))
    typer.echo(f"{kind} backup taken in {took:.1f}s")


@backup_app.command("list")
def list_command() -> None:
    """The backups in every repository, oldest first."""
    from agora.backup.physical import backups

    found = _guarded("reading repositories", backups)
    if not found:
        typer.echo("no backups yet: run `agora backup run full`")
    for item in found:
        stamp = dt.datetime.fromtimestamp(item["timestamp"]["stop"], dt.UTC)
        size = item["info"]["repository"]["delta"]
        typer.echo(
            f"{item['label']}  {item['type']:<5} repo{item['database']['repo-key']}  "
            f"{stamp:%Y-%m-%d %H:%M:%S}Z  {size / 1e6:.1f} MB"
        )


@backup_app.command("list-logical")
def list_logical_command() -> None:
    """The encrypted logical dumps on S3, oldest first."""
    from agora.backup.logical import list_dumps

    found = _guarded("reading the bucket", list_dumps)
    if not found:
        typer.echo("no logical dumps yet: run `agora backup run logical`")
    for dump in found:
        typer.echo(f"{dump.key}  {dump.taken:%Y-%m-%d %H:%M:%S}Z  {dump.size / 1e6:.1f} MB")


@backup_app.command("restore-logical")
def restore_logical_command(
    target_url: Annotated[
        str | None,
        typer.Option(help="Database to restore into (postgresql://…; must exist)"),
    ] = None,
    table: Annotated[
        list[str] | None, typer.Option(help="Only this table (repeatable); default: everything")
    ] = None,
    schema: Annotated[str | None, typer.Option(help="Only tables of this schema")] = None,
    key: Annotated[
        str | None, typer.Option(help="The dump's key (list-logical); default: the newest")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(help="Instead: write the decrypted dump here, for pg_restore by hand"),
    ] = None,
) -> None:
    """Download a logical dump, check its checksum, decrypt it, pg_restore it (or tables of it)."""
    from agora.backup.logical import fetch, restore_logical

    if (target_url is None) == (output is None):
        raise _fail("give exactly one of --target-url (restore) or --output (the decrypted file)")
    if output is not None:
        if not output.parent.is_dir():
            raise _fail(f"--output {output}: no directory {output.parent}; create it first")
        got = _guarded("fetching", lambda s: fetch(s, key, output))
        typer.echo(f"{got} decrypted into {output} (pg_restore --list {output})")
        return
    assert target_url is not None
    got, took = _guarded(
        "restoring",
        lambda s: restore_logical(s, target_url=target_url, key=key, tables=table, schema=schema),
    )
    what = ", ".join(table) if table else "everything"
    typer.echo(f"restored {what} from {got} in {took:.1f}s")


@backup_app.command("verify")
def verify_command() -> None:
    """Re-read every backup and WAL file in each repository and check its checksum."""
    from agora.backup.physical import verify

    _guarded("verifying", verify)
    typer.echo("every backup and WAL file matches its checksum")


@backup_app.command("restore")
def restore_command(
    target: Annotated[Path, typer.Option(help="New or empty data directory")],
    to: Annotated[
        dt.datetime | None,
        typer.Option(
            help="Point in time (ISO 8601; UTC when no offset); default: latest",
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S"],
        ),
    ] = None,
    repo: Annotated[
        int | None, typer.Option(help="1 local, 2 S3 (default: first that has it)")
    ] = None,
) -> None:
    """Restore the latest backup into TARGET, replaying WAL to --to (or to the end)."""
    from agora.backup.physical import restore

    if to is not None and to.tzinfo is None:
        to = to.replace(tzinfo=dt.UTC)
    done = _guarded("restoring", lambda s: restore(s, target, to=to, repo=repo))
    typer.echo(
        f"restored into {done.target} in {done.seconds:.1f}s; start it with "
        f"pg_ctl -D {done.target} start (it replays WAL, then promotes)"
    )


@backup_app.command("drill")
def drill_command() -> None:
    """Restore into a throwaway cluster, verify row counts and pg_amcheck; non-zero on mismatch."""
    from agora.backup.drill import drill

    report = _guarded("restore drill", drill)
    typer.echo(
        f"RTO {report.rto_s:.1f}s (restore {report.restore_s:.1f}s), RPO {report.rpo_s:.1f}s"
    )
    typer.echo(f"pg_amcheck: {report.amcheck}")
    if not report.ok:
        for line in report.mismatches:
            typer.secho(f"MISMATCH {line}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    typer.echo("drill passed: every table matches the source at the restore point")
