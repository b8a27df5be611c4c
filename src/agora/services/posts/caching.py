"""What the posts service caches, under which keys, and which stamps each entry depends on.

- ``post``: one post as one viewer sees it (``liked_by_me`` is the viewer's), keyed
  ``post:{post}:{viewer}``; depends on the post's stamp, moved by every like, unlike and delete.
- ``feed``: one page of a reader's home feed, keyed ``feed:{reader}:{limit}:{cursor}``;
  depends on the reader's follows stamp, the stamp of every post on the page (so a like
  anywhere never leaves a stale ``like_count``), and — first page only — the posts stamp of
  every author the reader follows and of the reader: a new post of any of them changes the
  first page. Later pages hold only older posts, which a new post cannot enter.

A post by an author with 100,000 followers moves one stamp; each follower's next feed read
finds its entry stale in the same round trip that would have served it.
"""

from __future__ import annotations

import re
import uuid

from starlette.types import Scope

from agora.cache import stamp
from agora.cache.service import entry_key
from agora.ids import canonical_uuid


def post_stamp(post_id: uuid.UUID | str) -> str:
    return stamp("post", post_id)


def author_stamp(author_id: uuid.UUID | str) -> str:
    """Moves when the author adds or deletes a post."""
    return stamp("author", author_id)


def follows_stamp(user_id: uuid.UUID | str) -> str:
    """Moves when the user follows or unfollows someone."""
    return stamp("follows", user_id)


def post_key(post_id: uuid.UUID | str, viewer_id: uuid.UUID | str) -> str:
    """Strings given must be canonical (``agora.ids.canonical_uuid``)."""
    return f"{post_id}:{viewer_id}"


_ONE_POST = re.compile(r"/api/v1/posts/([^/]+)")


def post_entry_for(scope: Scope, user_id: str) -> str | None:
    """The entry ``GET /api/v1/posts/{id}`` will look up (``PostsService.get_post``), known
    before routing: the rate limiter sends that lookup in its own round trip."""
    if scope.get("method") != "GET":
        return None
    match = _ONE_POST.fullmatch(scope["path"])
    post, viewer = (canonical_uuid(match[1]), canonical_uuid(user_id)) if match else (None, None)
    if post is None or viewer is None:
        return None  # not this route (feed, notifications...), or an id that names nothing
    return entry_key("post", post_key(post, viewer))


def feed_key(reader_id: uuid.UUID, limit: int, cursor: str | None) -> str:
    return f"{reader_id}:{limit}:{cursor or '-'}"


def feed_stamps(
    reader_id: uuid.UUID,
    post_ids: list[str],
    followees: list[uuid.UUID] | None,
) -> list[str]:
    """The stamps a feed page depends on; ``followees`` only for the first page."""
    stamps = [follows_stamp(reader_id), *(post_stamp(p) for p in post_ids)]
    if followees is not None:
        stamps.append(author_stamp(reader_id))
        stamps.extend(author_stamp(a) for a in followees)
    return stamps
