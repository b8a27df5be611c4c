"""Alembic environment: online migrations only, serialised by a PostgreSQL advisory lock.

The lock is taken inside the migration transaction, before Alembic reads the current
revision, so several processes running ``agora migrate`` at once apply each step exactly once.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

# Any constant shared by every migrating process; "agora" in ASCII.
MIGRATION_LOCK_KEY = 0x61676F7261


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url is not set; run migrations through `agora migrate`")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=False)
        with context.begin_transaction():
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline migrations are not supported; run `agora migrate`")
run_migrations_online()
