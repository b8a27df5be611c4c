"""PostgreSQL access: the connection pool and transaction helpers."""

from agora.db.pool import Connection, Database

__all__ = ["Connection", "Database"]
