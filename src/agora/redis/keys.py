"""Every Redis key Agora uses, built here and nowhere else: all of them under ``agora:``.

One namespace means one ``SCAN agora:*`` shows everything Agora keeps, an operator can share a
Redis with something else, and a key family cannot be renamed in one module and not in
another. Everything under it is rebuildable (caches, marks, counters, presence): a key that
disappears costs a cache miss or a reset counter, never data. ``tests/integration/redis``
checks, after a flow through every service, that Redis holds no key outside the namespace.

Keys that one script reads together share a hash tag (``{...}``), so they also land in one
Redis Cluster slot.
"""

from __future__ import annotations

from typing import Literal

NAMESPACE = "agora:"
EVENTS_CHANNEL = f"{NAMESPACE}events"
"""The default pub/sub channel (a channel is not a key, but it lives in the namespace too)."""
KEY_EVENTS_CHANNEL = f"{NAMESPACE}keys"
"""Signing-key revocations: every instance of every service listens (docs/security.md)."""

RATE_LIMIT_PREFIX = f"{NAMESPACE}rl:"
CACHE_ENTRY_PREFIX = f"{NAMESPACE}c:"
STAMP_PREFIX = f"{NAMESPACE}s:"
DELETED_USER_PREFIX = f"{NAMESPACE}deleted-user:"
REVOKED_SESSION_PREFIX = f"{NAMESPACE}revoked-session:"
LOGIN_BACKOFF_PREFIX = f"{NAMESPACE}login-backoff:"
PRESENCE_PREFIX = f"{NAMESPACE}presence:"
RECENT_WRITER_PREFIX = f"{NAMESPACE}db:wrote:"
ACTIVE_USERS_PREFIX = f"{NAMESPACE}active_users:"
GAMEDAY_PREFIX = f"{NAMESPACE}gameday:"


def rate_limit(client: str) -> tuple[str, str]:
    """A rate-limit client's TAT and its consecutive refusals (one hash tag: one slot)."""
    tagged = f"{RATE_LIMIT_PREFIX}{{{client}}}"
    return tagged, f"{tagged}:strikes"


def cache_entry(cache: str, key: str) -> str:
    return f"{CACHE_ENTRY_PREFIX}{cache}:{key}"


def stamp(kind: str, ident: object) -> str:
    """The stamp of one changeable thing: ``stamp("post", post_id)``."""
    return f"{STAMP_PREFIX}{kind}:{ident}"


def deleted_user(user_id: str) -> str:
    return f"{DELETED_USER_PREFIX}{user_id}"


def revoked_session(session_id: str) -> str:
    return f"{REVOKED_SESSION_PREFIX}{session_id}"


def login_backoff(digest: str) -> tuple[str, str]:
    """An identifier's failure count and lock. ``digest`` is a keyed hash (HMAC) of the
    identifier, never the identifier: the key must not say which name or e-mail is tried."""
    tagged = f"{LOGIN_BACKOFF_PREFIX}{{{digest}}}"
    return f"{tagged}:fails", f"{tagged}:lock"


def presence(user_id: str) -> str:
    return f"{PRESENCE_PREFIX}{user_id}"


def recent_writer(user_id: str) -> str:
    return f"{RECENT_WRITER_PREFIX}{user_id}"


def active_users(bucket: int) -> str:
    return f"{ACTIVE_USERS_PREFIX}{bucket}"


def gameday_probe() -> str:
    """The game day's write probe of a Sentinel-promoted master (``agora.gameday``)."""
    return f"{GAMEDAY_PREFIX}probe"


Family = Literal[
    "rl",
    "c",
    "s",
    "deleted-user",
    "revoked-session",
    "login-backoff",
    "presence",
    "db:wrote",
    "active_users",
    "gameday",
]
FAMILIES: dict[Family, str] = {
    "rl": RATE_LIMIT_PREFIX,
    "c": CACHE_ENTRY_PREFIX,
    "s": STAMP_PREFIX,
    "deleted-user": DELETED_USER_PREFIX,
    "revoked-session": REVOKED_SESSION_PREFIX,
    "login-backoff": LOGIN_BACKOFF_PREFIX,
    "presence": PRESENCE_PREFIX,
    "db:wrote": RECENT_WRITER_PREFIX,
    "active_users": ACTIVE_USERS_PREFIX,
    "gameday": GAMEDAY_PREFIX,
}
"""Every key family, for the test that checks Redis holds nothing else and for operators."""
