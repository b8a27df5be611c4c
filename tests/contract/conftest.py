"""The contract suite runs against the attack suite's system: a real auth app, and posts and
realtime trusting auth's keys through its published JWKS (real PostgreSQL and Redis)."""

from __future__ import annotations

# Fixtures of the security suite and the integration fixtures it is built on, used as they are.
from tests.integration.auth.conftest import auth  # noqa: F401
from tests.integration.realtime.conftest import serve  # noqa: F401
from tests.security.conftest import system  # noqa: F401

# The fuzz suite's population: alice, bob, a post of bob's, and their ids.
from tests.security.test_fuzz_routes import population  # noqa: F401
