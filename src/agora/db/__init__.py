"""PostgreSQL access: the connection pools, read routing and transaction helpers."""

from agora.db.managed import Connection, PoolConfig
from agora.db.pool import Database, DatabaseUnavailable

__all__ = ["Connection", "Database", "DatabaseUnavailable", "PoolConfig"]
