"""The security rules of the settings object: what production refuses to start with.

Kept here rather than in ``config.py`` so the security policy reads in one place; ``config``
imports this module, so it must not import anything that imports ``config``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptography.fernet import Fernet

if TYPE_CHECKING:
    from agora.config import Settings


def check_fernet_keys(keys: list[str]) -> None:
    """Raise ``ValueError`` naming the first key that is not a Fernet key (never its value)."""
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            raise ValueError(
                f"key #{position} is not a Fernet key (32 url-safe base64-encoded bytes; "
                "make one with `agora keys new-encryption-key`)"
            ) from None


def production_problems(settings: Settings) -> list[str]:
    """The development defaults a production process must not run with, beyond the debug flag
    and ``*`` CORS that ``Settings`` itself refuses first."""
    problems = []
    if not settings.key_encryption_key:
        problems.append("AGORA_KEY_ENCRYPTION_KEY is required (signing keys are encrypted at rest)")
    if settings.cookie_secure is False:
        problems.append("AGORA_COOKIE_SECURE must not be off")
    if "trusted_proxies" not in settings.model_fields_set:
        # The loopback default fits only a gateway on the same host. Behind a remote gateway
        # every client would share its address, and the per-address login limits would let one
        # client's failed logins lock everyone out of login and refresh.
        problems.append(
            "AGORA_TRUSTED_PROXIES must be set explicitly: the gateway's addresses "
            "(comma-separated IPs or CIDRs) whose X-Forwarded-For is believed"
        )
    insecure = [o for o in settings.cors_origins if o.startswith("http://")]
    if insecure:
        problems.append(f"AGORA_CORS_ORIGINS must be https:// origins (got {', '.join(insecure)})")
    return problems
