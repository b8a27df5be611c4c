"""The S3 bucket the logical dumps go to (boto3), with errors an operator can act on.

The same bucket, endpoint, keys and CA file as pgBackRest's S3 repository (repo2); the dumps
live under ``<prefix>/logical/``, beside pgBackRest's ``archive/`` and ``backup/``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from agora.backup.pgbackrest import BackupError
from agora.backup.settings import BackupSettings

T = TypeVar("T")

_UNREACHABLE = (
    "the S3 repository is unreachable: check AGORA_BACKUP_S3_ENDPOINT, the network and "
    "AGORA_BACKUP_S3_CA_FILE"
)


def client(settings: BackupSettings) -> Any:
    settings.require_s3()
    assert settings.s3_secret_access_key is not None
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key.get_secret_value(),
        verify=str(settings.s3_ca_file) if settings.s3_ca_file is not None else True,
        config=Config(
            connect_timeout=settings.s3_timeout_s,
            read_timeout=max(settings.s3_timeout_s, 60.0),
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path" if settings.s3_uri_style == "path" else "virtual"},
        ),
    )


@contextmanager
def s3_errors(bucket: str, missing: str | None = None) -> Iterator[None]:
    """Turn boto3's exceptions into one BackupError that says what to check.

    ``missing``: what a bare 404 means here (HEAD requests carry no error code).
    """
    try:
        yield
    except EndpointConnectionError:
        raise BackupError(_UNREACHABLE) from None
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchKey") and missing is not None:
            raise BackupError(missing) from None
        if code in ("NoSuchBucket", "404"):
            raise BackupError(
                f"no repository: the S3 bucket {bucket} does not exist (create it, or fix "
                "AGORA_BACKUP_S3_BUCKET)"
            ) from None
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"):
            raise BackupError(
                f"S3 refused the request ({code}): check AGORA_BACKUP_S3_ACCESS_KEY_ID / "
                "_SECRET_ACCESS_KEY and the bucket policy"
            ) from None
        raise BackupError(f"S3 error {code}: {exc}") from None
    except BotoCoreError as exc:  # timeouts, TLS failures, name resolution
        raise BackupError(f"{_UNREACHABLE} ({type(exc).__name__})") from None


def call(bucket: str, action: Callable[[], T]) -> T:
    with s3_errors(bucket, None):
        return action()
