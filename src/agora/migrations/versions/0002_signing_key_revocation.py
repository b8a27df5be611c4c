"""Emergency signing-key revocation: ``signing_keys.revoked_at``.

A revoked key is neither published nor used to sign, whatever its retirement says; the row
stays, so the operator can see which key was revoked and when (``agora keys revoke``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable without a default: instant on PostgreSQL 11+, no table rewrite.
    op.execute("ALTER TABLE signing_keys ADD COLUMN revoked_at timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE signing_keys DROP COLUMN revoked_at")
