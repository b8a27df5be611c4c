"""AES-256-GCM encryption of a logical dump, streamed, keyed by the backup passphrase.

Why this and not pgBackRest's cipher: the logical dump is not a pgBackRest file, and GCM is
authenticated (a flipped byte or a wrong key is an error, never garbage handed to pg_restore),
from `cryptography` (already a runtime dependency: it signs the JWTs). The key comes from the
same passphrase as the physical repositories (one secret to keep off the host), stretched by
scrypt with a random salt per dump, so one guessed dump key opens nothing else.

Format: header (magic, salt, nonce, key check) | ciphertext | 16-byte tag; the header is
authenticated as associated data. The key check (a second scrypt output) tells a wrong
passphrase apart from a damaged file before anything is decrypted.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable
from typing import IO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

MAGIC = b"AGORA-DUMP\x00\x01"
SALT, NONCE, CHECK, TAG = 16, 12, 32, 16
HEADER = len(MAGIC) + SALT + NONCE + CHECK
CHUNK = 1 << 20
# scrypt cost: 32 MiB and ~0.4 s here, once per dump (OWASP's floor is N=2^17 r=8 for login
# passwords; this passphrase is >= 16 characters and never typed into a web form).
_N, _R, _P = 2**15, 8, 1


class Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


class WrongPassphrase(Exception):
    """The passphrase is not the one the dump was encrypted with."""


class Damaged(Exception):
    """The file is not an intact Agora dump (truncated, altered, or not one at all)."""


def _derive(passphrase: str, salt: bytes) -> tuple[bytes, bytes]:
    material = Scrypt(salt=salt, length=32 + CHECK, n=_N, r=_R, p=_P).derive(passphrase.encode())
    return material[:32], material[32:]


def encrypt(chunks: Iterable[bytes], out: Sink, passphrase: str) -> int:
    """Write the encrypted form of ``chunks`` to ``out``; returns the plaintext byte count."""
    salt, nonce = os.urandom(SALT), os.urandom(NONCE)
    key, check = _derive(passphrase, salt)
    header = MAGIC + salt + nonce + check
    encryptor = Cipher(algorithms.AES256(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(header)
    out.write(header)
    plain = 0
    for chunk in chunks:
        plain += len(chunk)
        out.write(encryptor.update(chunk))
    out.write(encryptor.finalize())
    out.write(encryptor.tag)
    return plain


def decrypt(source: IO[bytes], out: Sink, passphrase: str) -> int:
    """Decrypt a seekable ``source`` into ``out``; raises WrongPassphrase or Damaged.

    ``out`` receives plaintext before the tag is checked: callers write to a private file and
    use it only when this returns.
    """
    header = source.read(HEADER)
    if len(header) < HEADER or not header.startswith(MAGIC):
        raise Damaged("not an Agora logical dump (no AGORA-DUMP header)")
    salt = header[len(MAGIC) : len(MAGIC) + SALT]
    nonce = header[len(MAGIC) + SALT : len(MAGIC) + SALT + NONCE]
    key, check = _derive(passphrase, salt)
    if not hmac.compare_digest(check, header[-CHECK:]):
        raise WrongPassphrase("the passphrase does not open this dump")
    end = source.seek(0, os.SEEK_END)
    if end < HEADER + TAG:
        raise Damaged("the dump is truncated")
    source.seek(end - TAG)
    tag = source.read(TAG)
    source.seek(HEADER)
    decryptor = Cipher(algorithms.AES256(key), modes.GCM(nonce, tag)).decryptor()
    decryptor.authenticate_additional_data(header)
    remaining, plain = end - TAG - HEADER, 0
    while remaining:
        chunk = source.read(min(CHUNK, remaining))
        remaining -= len(chunk)
        data = decryptor.update(chunk)
        plain += len(data)
        out.write(data)
    try:
        out.write(decryptor.finalize())
    except InvalidTag:
        raise Damaged("the dump fails authentication: it was altered or truncated") from None
    return plain
