"""Initial schema: users, refresh sessions, signing keys, posts, follows, likes, notifications.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE users (
            id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            username      text NOT NULL CHECK (username ~ '^[a-z0-9_]{3,30}$'),
            email         text NOT NULL CHECK (char_length(email) <= 320),
            password_hash text NOT NULL,
            display_name  text NOT NULL DEFAULT '' CHECK (char_length(display_name) <= 50),
            bio           text NOT NULL DEFAULT '' CHECK (char_length(bio) <= 300),
            created_at    timestamptz NOT NULL DEFAULT now(),
            updated_at    timestamptz NOT NULL DEFAULT now()
        );
        -- Case-insensitive uniqueness: "Alice" and "alice" are the same account.
        CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));
        CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

        -- One row per refresh token; a family is one login's chain of rotations.
        CREATE TABLE refresh_tokens (
            id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            family_id   uuid NOT NULL,
            user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            token_hash  bytea NOT NULL UNIQUE,
            created_at  timestamptz NOT NULL DEFAULT now(),
            expires_at  timestamptz NOT NULL,
            used_at     timestamptz,
            revoked_at  timestamptz
        );
        CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
        CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

        CREATE TABLE signing_keys (
            kid          text PRIMARY KEY,
            algorithm    text NOT NULL DEFAULT 'RS256' CHECK (algorithm = 'RS256'),
            private_key  bytea NOT NULL,
            public_jwk   jsonb NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            retired_at   timestamptz
        );
        CREATE INDEX signing_keys_created_idx ON signing_keys (created_at DESC);

        CREATE TABLE posts (
            id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            author_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            content     text NOT NULL CHECK (char_length(content) BETWEEN 1 AND 500),
            like_count  integer NOT NULL DEFAULT 0 CHECK (like_count >= 0),
            created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
        );
        -- Keyset pagination of one author's posts, and of the feed (a merge over followees).
        CREATE INDEX posts_author_created_idx ON posts (author_id, created_at DESC, id DESC);

        CREATE TABLE follows (
            follower_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            followee_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            created_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (follower_id, followee_id),
            CHECK (follower_id <> followee_id)
        );
        CREATE INDEX follows_followee_idx ON follows (followee_id, follower_id);

        CREATE TABLE likes (
            post_id    uuid NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
            user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (post_id, user_id)
        );
        CREATE INDEX likes_user_idx ON likes (user_id);

        CREATE TABLE notifications (
            id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            recipient_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            kind         text NOT NULL CHECK (kind IN ('follow', 'like')),
            actor_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            post_id      uuid REFERENCES posts (id) ON DELETE CASCADE,
            created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
            read_at      timestamptz
        );
        CREATE INDEX notifications_recipient_created_idx
            ON notifications (recipient_id, created_at DESC, id DESC);
        -- One notification per like (post, actor) and per follow (recipient, actor), however
        -- often it is undone and redone; post_id leading also serves the ON DELETE CASCADE
        -- from posts, which would otherwise scan the whole table.
        CREATE UNIQUE INDEX notifications_post_actor_key ON notifications (post_id, actor_id);
        CREATE UNIQUE INDEX notifications_follow_once_key
            ON notifications (recipient_id, actor_id) WHERE kind = 'follow';
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE notifications, likes, follows, posts, signing_keys, refresh_tokens, users"
    )
