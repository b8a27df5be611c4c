"""The contract suite runs against the attack suite's system: a real auth app, and posts and
realtime trusting auth's keys through its published JWKS (real PostgreSQL and Redis)."""

from __future__ import annotations

# Fixtures of the security suite (and the integration fixtures it reuses), used here as is.
from tests.security.conftest import auth, serve, system  # noqa: F401
