"""Sorting database errors: which say the server is unreachable, which a retry may cure."""

from __future__ import annotations

import asyncpg

# The server could not be reached or dropped the session: the dependency, not the query,
# failed. Only these count against the ``postgres`` circuit breaker; a unique violation or a
# statement timeout proves the server answered.
_CONNECTIVITY = (
    OSError,  # refused, reset, unreachable; TimeoutError (connect timeout) is an OSError too
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, incl. "closed in the middle of operation"
    asyncpg.CannotConnectNowError,  # 57P03: starting up or shutting down
    asyncpg.AdminShutdownError,  # 57P01
    asyncpg.CrashShutdownError,  # 57P02
    asyncpg.TooManyConnectionsError,  # 53300
    asyncpg.InternalClientError,  # protocol state lost with the socket
)

# PostgreSQL rolled the whole transaction back before reporting these: nothing of it was
# applied, so running the unit of work again from the start cannot apply a write twice.
_ROLLED_BACK = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)


def is_connectivity_error(exc: BaseException) -> bool:
    return isinstance(exc, _CONNECTIVITY)


def is_rolled_back(exc: BaseException) -> bool:
    return isinstance(exc, _ROLLED_BACK)
