"""pgBackRest: its configuration file, and running it with errors an operator can act on.

Two repositories: repo1 on local disk (fast restores), repo2 on S3 (off-site). Both are
encrypted client-side with aes-256-cbc. The passphrase and S3 keys are written only into the
configuration file (mode 0600, owned by the cluster's OS user, which PostgreSQL's
archive_command needs), and handed to the commands we run through pgBackRest's environment
variables, so they are never on a command line and never logged (pgBackRest redacts them).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess  # nosec B404 # runs pgbackrest, never a shell
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agora.backup.settings import BackupSettings
from agora.config import ConfigError

LOCAL, S3 = 1, 2


class BackupError(Exception):
    """A backup step failed; the message says what happened and what to do."""


# pgBackRest's error codes and messages, mapped to what the operator should do about them.
_EXPLANATIONS: list[tuple[tuple[str, ...], str]] = [
    (
        # A wrong key "decrypts" the info file to garbage that fails to parse as an ini file.
        ("cipher header invalid", "key/value found outside of section", "CryptoError"),
        "the repository cannot be decrypted: wrong passphrase "
        "(AGORA_BACKUP_PASSPHRASE_FILE / AGORA_BACKUP_PASSPHRASE must be the one the repository "
        "was created with)",
    ),
    (
        ("unable to connect", "HostConnectError", "unable to resolve", "TLS", "SocketError"),
        "the S3 repository is unreachable: check AGORA_BACKUP_S3_ENDPOINT, the network and "
        "AGORA_BACKUP_S3_CA_FILE",
    ),
    (
        ("archive_mode must be enabled", "archive_command", "ArchiveTimeoutError", "[082]"),
        "the cluster is not archiving WAL to pgBackRest: run `agora backup init` (it sets "
        "archive_command), make sure archive_mode=on (needs a restart), then retry",
    ),
    (
        ("does not exist", "missing stanza", "[055]", "[103]", "[075]"),
        "no backup repository here: run `agora backup init` first",
    ),
    (
        ("unable to find backup set", "no backup set found"),
        "no backup to restore: run `agora backup run full` first",
    ),
]


# pgBackRest's per-repository status in `info`: 0 ok, 2 no valid backups yet (both fine).
_INFO_OK = (0, 2)
# Enough of pgBackRest's output to act on, without flooding the terminal or the journal.
_MAX_OUTPUT = 4000


def printable(output: str) -> str:
    """Output with what a wrong key decrypted to (binary garbage) replaced, and bounded."""
    clean = "".join(c if c.isprintable() or c == "\n" else "?" for c in output)
    return clean if len(clean) <= _MAX_OUTPUT else clean[:_MAX_OUTPUT] + " …"


def explain(output: str) -> str:
    for needles, advice in _EXPLANATIONS:
        if any(needle in output for needle in needles):
            return advice
    return "see the pgBackRest output above"


def pgbackrest_binary() -> str:
    found = shutil.which("pgbackrest")
    if found is None:
        raise ConfigError(
            "pgbackrest is not installed (make backup-tools, or apt-get install pgbackrest)"
        )
    return found


def render_config(settings: BackupSettings, passphrase: str) -> str:
    """The pgbackrest.conf for this deployment (secrets included: keep it 0600)."""
    base = settings.config_dir.resolve()
    repo: list[str] = [
        f"repo1-path={settings.repo_path.resolve()}",
        "repo1-cipher-type=aes-256-cbc",
        f"repo1-cipher-pass={passphrase}",
        f"repo1-retention-full-type={settings.retention_full_type}",
        f"repo1-retention-full={settings.retention_full}",
    ]
    if settings.s3_bucket is not None:
        settings.require_s3()
        assert settings.s3_secret_access_key is not None
        repo += [
            "repo2-type=s3",
            f"repo2-path={settings.s3_prefix}",
            f"repo2-s3-bucket={settings.s3_bucket}",
            f"repo2-s3-endpoint={settings.s3_host}",
            f"repo2-storage-port={settings.s3_port}",
            f"repo2-s3-region={settings.s3_region}",
            f"repo2-s3-uri-style={settings.s3_uri_style}",
            f"repo2-s3-key={settings.s3_access_key_id}",
            f"repo2-s3-key-secret={settings.s3_secret_access_key.get_secret_value()}",
            "repo2-cipher-type=aes-256-cbc",
            f"repo2-cipher-pass={passphrase}",
            f"repo2-retention-full-type={settings.retention_full_type}",
            f"repo2-retention-full={settings.retention_full}",
        ]
        if settings.s3_ca_file is not None:
            repo.append(f"repo2-storage-ca-file={settings.s3_ca_file.resolve()}")
    pg_data = settings.require_pg_data()
    lines = [
        "# Written by `agora backup init`; holds the repository passphrase: keep it 0600.",
        "[global]",
        *repo,
        "compress-type=lz4",
        f"process-max={settings.process_max}",
        "start-fast=y",
        "archive-check=y",
        f"io-timeout={max(int(settings.s3_timeout_s), 1)}",
        f"log-path={base / 'log'}",
        f"lock-path={base / 'lock'}",
        f"spool-path={base / 'spool'}",
        "log-level-console=warn",
        "log-level-file=info",
        "",
        f"[{settings.stanza}]",
        f"pg1-path={pg_data.resolve()}",
        f"pg1-port={settings.pg_port}",
        f"pg1-socket-path={settings.pg_socket_dir.resolve()}",
        f"pg1-user={settings.pg_user}",
        "",
    ]
    return "\n".join(lines)


def _chown(path: Path, user: str) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, user, user)


def write_config(settings: BackupSettings) -> Path:
    """Create the configuration, log/lock/spool and local repository directories."""
    text = render_config(settings, settings.require_passphrase())
    user = settings.run_as
    for directory in (
        settings.config_dir,
        settings.config_dir / "log",
        settings.config_dir / "lock",
        settings.config_dir / "spool",
        settings.repo_path,
    ):
        directory.mkdir(parents=True, exist_ok=True, mode=0o750)
        _chown(directory, user)
    path = settings.config_file
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    _chown(tmp, user)
    tmp.replace(path)
    return path


def archive_command(settings: BackupSettings) -> str:
    conf = shlex.quote(str(settings.config_file.resolve()))
    return f"{pgbackrest_binary()} --config={conf} --stanza={settings.stanza} archive-push %p"


@dataclass(frozen=True)
class Result:
    stdout: str
    stderr: str


class PgBackRest:
    """Runs pgBackRest commands as the cluster's OS user, with this deployment's config."""

    def __init__(self, settings: BackupSettings) -> None:
        self.settings = settings

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        passphrase = self.settings.require_passphrase()
        # The passphrase given now wins over the one in the file (a mistyped one must fail
        # here, loudly, rather than silently use the stored one).
        env["PGBACKREST_REPO1_CIPHER_PASS"] = passphrase
        if self.settings.s3_bucket is not None:
            env["PGBACKREST_REPO2_CIPHER_PASS"] = passphrase
        return env

    def run(self, *args: str, timeout: float | None = None) -> Result:
        if not self.settings.config_file.exists():
            raise BackupError(
                f"no backup repository configured ({self.settings.config_file} is missing): "
                "run `agora backup init` first"
            )
        command = [
            pgbackrest_binary(),
            f"--config={self.settings.config_file.resolve()}",
            f"--stanza={self.settings.stanza}",
            *args,
        ]
        if os.geteuid() == 0 and self.settings.run_as != "root":
            command = ["runuser", "-u", self.settings.run_as, "--", *command]
        try:
            done = subprocess.run(  # noqa: S603  # nosec B603 # fixed program, arguments from settings
                command,
                env=self._env(),
                capture_output=True,
                text=True,
                errors="replace",  # a wrong key's garbage must not crash the message
                timeout=timeout,
                check=False,
                cwd="/",
            )
        except subprocess.TimeoutExpired:
            raise BackupError(f"pgbackrest {args[-1]} did not finish in {timeout:.0f}s") from None
        if done.returncode != 0:
            output = printable((done.stderr + done.stdout).strip())
            raise BackupError(f"pgbackrest {args[-1]} failed: {explain(output)}\n{output}")
        return Result(done.stdout, done.stderr)

    def info(self) -> list[dict[str, Any]]:
        """Every stanza; a repository it cannot read is an error (pgBackRest exits 0 then)."""
        out = self.run("--output=json", "info").stdout
        try:  # strict=False: with a wrong key, pgBackRest puts raw control bytes in its JSON
            data: list[dict[str, Any]] = json.loads(out, strict=False)
        except ValueError:
            raise BackupError(f"pgbackrest info: unreadable output\n{printable(out)}") from None
        for stanza in data:
            for repo in stanza.get("repo", []):
                status = repo.get("status", {})
                if status.get("code", 0) not in _INFO_OK:
                    message = printable(str(status.get("message", "")))
                    raise BackupError(
                        f"pgbackrest info failed for repo{repo.get('key')}: {explain(message)}"
                    )
        return data

    def verify(self, repo: int) -> str:
        """pgBackRest's verify summary for ``repo``; an invalid file is an error.

        pgBackRest 2.45 exits 0 even when a file fails its checksum (it only logs it), so the
        text summary is read: any "status: error" fails, naming the backups and counts.
        """
        out = self.run(
            f"--repo={repo}", "--output=text", "--verbose", "verify", timeout=24 * 3600
        ).stdout
        if "status: ok" not in out or "status: error" in out:
            raise BackupError(
                f"verify failed in repo{repo}: a backup or WAL file does not match its "
                f"checksum. Take a new full backup (`agora backup run full`) and do not restore "
                f"the invalid set:\n{printable(out.strip())}"
            )
        return out
