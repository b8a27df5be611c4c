"""Run Alembic migrations programmatically (``agora migrate``, ``agora up``, test fixtures)."""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, pool, text


def sqlalchemy_url(url: str) -> str:
    """Alembic runs on SQLAlchemy with the psycopg 3 driver; the services use asyncpg."""
    for prefix in ("postgresql://", "postgres://", "postgresql+asyncpg://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def alembic_config(database_url: str) -> Config:
    config = Config(str(files("agora") / "alembic.ini"))
    config.set_main_option("script_location", "agora:migrations")
    # ConfigParser interpolates '%': escape it so URL-encoded passwords survive.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return config


def upgrade_to_head(database_url: str) -> None:
    """Idempotent and safe to run from several processes at once (see migrations/env.py)."""
    command.upgrade(alembic_config(database_url), "head")


def current_revision(database_url: str) -> str | None:

    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            exists = conn.execute(text("SELECT to_regclass('alembic_version')")).scalar()
            if exists is None:
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
