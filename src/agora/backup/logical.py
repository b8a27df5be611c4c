"""The daily logical backup: ``pg_dump -Fc``, encrypted on this host, to S3 with its checksum.

For what physical backups cannot do: restore one table, or move to another major version.
pg_dump's output is encrypted as it streams (the plaintext never touches a disk), the
encrypted file's SHA-256 travels as object metadata and is checked again after every download,
and dumps older than AGORA_BACKUP_LOGICAL_RETENTION_DAYS are deleted after each new one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import shutil
import subprocess  # nosec B404 # runs pg_dump / pg_restore, never a shell
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psycopg

from agora.backup import envelope, metrics, objectstore
from agora.backup.cluster import bindir
from agora.backup.pgbackrest import BackupError
from agora.backup.settings import BackupSettings

_STAMP = "%Y%m%dT%H%M%SZ"
_NAME = re.compile(r"/(\d{8}T\d{6}Z)\.dump\.aes$")


@dataclass(frozen=True)
class Dump:
    key: str
    taken: dt.datetime
    size: int


@dataclass(frozen=True)
class LogicalResult:
    key: str
    plain_bytes: int
    stored_bytes: int
    seconds: float
    expired: list[str] = field(default_factory=list)


def pg_tool(name: str) -> str:
    """pg_dump/pg_restore of the server's own version where pg_config names it, else PATH."""
    try:
        candidate = bindir() / name
        if candidate.exists():
            return str(candidate)
    except BackupError:
        pass
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} not found: install postgresql-client (the server's version)")
    return found


def _libpq(database_url: str) -> tuple[str, dict[str, str]]:
    """A conninfo without the password, which goes in PGPASSWORD (never on a command line)."""
    params = psycopg.conninfo.conninfo_to_dict(database_url)
    password = params.pop("password", None)
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in params.items()}), env


def _prefix(settings: BackupSettings) -> str:
    return f"{settings.s3_prefix.strip('/')}/logical/"


def _spool(settings: BackupSettings) -> Path:
    path = settings.config_dir / "spool"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _stream(stdout: IO[bytes]) -> Iterator[bytes]:
    while chunk := stdout.read(envelope.CHUNK):
        yield chunk


def run_logical(settings: BackupSettings) -> LogicalResult:
    """Dump, encrypt, upload, then expire dumps past retention; records agora_backup_* metrics."""
    started = time.monotonic()
    try:
        result = _run_logical(settings, started)
    except BackupError:
        metrics.record(settings.textfile_dir, "logical", success=False)
        raise
    metrics.record(
        settings.textfile_dir,
        "logical",
        success=True,
        duration_s=result.seconds,
        size_bytes=result.stored_bytes,
    )
    return result


def _run_logical(settings: BackupSettings, started: float) -> LogicalResult:
    bucket = settings.require_s3()
    passphrase = settings.require_passphrase()
    conninfo, env = _libpq(settings.require_database_url())
    dbname = str(psycopg.conninfo.conninfo_to_dict(conninfo).get("dbname") or "postgres")
    s3 = objectstore.client(settings)
    objectstore.call(bucket, lambda: s3.head_bucket(Bucket=bucket))  # fail before dumping
    now = dt.datetime.now(dt.UTC)
    key = f"{_prefix(settings)}{dbname}/{now:{_STAMP}}.dump.aes"
    with tempfile.NamedTemporaryFile(dir=_spool(settings), suffix=".aes") as out:
        digest = hashlib.sha256()
        plain = _dump_encrypted(conninfo, env, passphrase, _Hashing(out, digest))
        out.flush()
        stored = out.tell()
        objectstore.call(
            bucket,
            lambda: s3.upload_file(
                out.name,
                bucket,
                key,
                ExtraArgs={
                    "Metadata": {"sha256": digest.hexdigest(), "plain-bytes": str(plain)},
                    "ChecksumAlgorithm": "SHA256",  # S3 checks the transfer as well
                },
            ),
        )
    expired = expire(settings, now=now)
    return LogicalResult(key, plain, stored, time.monotonic() - started, expired)


class _Hashing:
    """A writable file that hashes what goes through it (the checksum of the stored object)."""

    def __init__(self, out: IO[bytes], digest: hashlib._Hash) -> None:
        self.out, self.digest = out, digest

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.out.write(data)


def _dump_encrypted(conninfo: str, env: dict[str, str], passphrase: str, out: _Hashing) -> int:
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(  # noqa: S603  # nosec B603 # fixed program, conninfo as one argument
            [pg_tool("pg_dump"), "--format=custom", "--no-password", "--dbname", conninfo],
            stdout=subprocess.PIPE,
            stderr=errors,
            env=env,
        )
        assert proc.stdout is not None
        try:
            plain = envelope.encrypt(_stream(proc.stdout), out, passphrase)
        finally:
            proc.stdout.close()
            code = proc.wait()
        errors.seek(0)
        message = errors.read().decode(errors="replace").strip()
    if code != 0:
        raise BackupError(f"pg_dump failed (exit {code}): {message}")
    return plain


def list_dumps(settings: BackupSettings) -> list[Dump]:
    """Every logical dump in the bucket, oldest first."""
    bucket = settings.require_s3()
    s3 = objectstore.client(settings)
    found: list[Dump] = []
    with objectstore.s3_errors(bucket):
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=_prefix(settings)
        ):
            for item in page.get("Contents", []):
                match = _NAME.search(item["Key"])
                if match is None:
                    continue
                taken = dt.datetime.strptime(match.group(1), _STAMP).replace(tzinfo=dt.UTC)
                found.append(Dump(item["Key"], taken, int(item["Size"])))
    return sorted(found, key=lambda d: (d.taken, d.key))


def expire(settings: BackupSettings, *, now: dt.datetime) -> list[str]:
    """Delete the dumps older than the retention; the newest one is always kept."""
    bucket = settings.require_s3()
    cutoff = now - dt.timedelta(days=settings.logical_retention_days)
    dumps = list_dumps(settings)
    old = [d.key for d in dumps[:-1] if d.taken < cutoff]
    s3 = objectstore.client(settings)
    for key in old:
        objectstore.call(bucket, lambda key=key: s3.delete_object(Bucket=bucket, Key=key))  # type: ignore[misc]
    return old


def fetch(settings: BackupSettings, key: str | None, plain_out: Path) -> str:
    """Download a dump (default: the newest), check its checksum, decrypt it into ``plain_out``."""
    bucket = settings.require_s3()
    passphrase = settings.require_passphrase()
    if key is None:
        dumps = list_dumps(settings)
        if not dumps:
            raise BackupError("no logical dump in the bucket: run `agora backup run logical` first")
        key = dumps[-1].key
    s3 = objectstore.client(settings)
    with tempfile.NamedTemporaryFile(dir=_spool(settings), suffix=".aes") as raw:
        missing = f"no dump {key} in s3://{bucket}: see `agora backup list-logical`"
        with objectstore.s3_errors(bucket, missing):
            head = s3.head_object(Bucket=bucket, Key=key)
            s3.download_fileobj(bucket, key, raw)
        raw.flush()
        expected = head.get("Metadata", {}).get("sha256")
        raw.seek(0)
        actual = hashlib.file_digest(raw, "sha256").hexdigest()
        if expected is None or expected != actual:
            raise BackupError(
                f"checksum mismatch for s3://{bucket}/{key}: stored {expected}, downloaded "
                f"{actual}; the object was damaged or replaced: use an older dump "
                "(`agora backup list-logical`)"
            )
        raw.seek(0)
        fd = os.open(plain_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            try:
                envelope.decrypt(raw, out, passphrase)
            except envelope.WrongPassphrase:
                plain_out.unlink()
                raise BackupError(
                    f"{key} cannot be decrypted: wrong passphrase (AGORA_BACKUP_PASSPHRASE_FILE / "
                    "AGORA_BACKUP_PASSPHRASE must be the one in use when it was taken)"
                ) from None
            except envelope.Damaged as exc:
                plain_out.unlink()
                raise BackupError(f"{key}: {exc}") from None
    return key


def restore_logical(
    settings: BackupSettings,
    *,
    target_url: str,
    key: str | None = None,
    tables: list[str] | None = None,
    schema: str | None = None,
) -> tuple[str, float]:
    """pg_restore a dump (or only ``tables`` of it) into an existing database; returns seconds."""
    started = time.monotonic()
    conninfo, env = _libpq(target_url)
    with tempfile.TemporaryDirectory(dir=_spool(settings)) as work:
        plain = Path(work) / "dump.pgdump"
        key = fetch(settings, key, plain)
        command = [
            pg_tool("pg_restore"),
            "--no-password",
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--dbname",
            conninfo,
        ]
        if schema is not None:
            command += ["--schema", schema]
        for table in tables or []:
            command += ["--table", table]
        command.append(str(plain))
        done = subprocess.run(  # noqa: S603  # nosec B603 # fixed program, arguments as a list
            command, env=env, capture_output=True, text=True, check=False, timeout=24 * 3600
        )
    if done.returncode != 0:
        raise BackupError(
            f"pg_restore failed: {(done.stderr + done.stdout).strip()} (a single-table restore "
            "needs the table absent in the target: restore into a fresh database, then copy)"
        )
    return key, time.monotonic() - started
