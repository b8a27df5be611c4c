"""The heavy reader's feed: ``posts (created_at DESC, id DESC)``.

A reader who follows thousands of accounts reads the home feed by walking recent posts once in
this order and keeping those of its followees (``timeline_repository``), instead of one probe of
``posts_author_created_idx`` per followee; docs/performance.md "Query plans at seeded scale".

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Not CONCURRENTLY: migrations run in one transaction under the advisory lock (env.py),
    # and CONCURRENTLY cannot run in a transaction. The build holds off writes to posts for
    # its duration (~0.1 s per 100,000 posts here).
    op.execute("CREATE INDEX posts_created_idx ON posts (created_at DESC, id DESC)")


def downgrade() -> None:
    op.execute("DROP INDEX posts_created_idx")
