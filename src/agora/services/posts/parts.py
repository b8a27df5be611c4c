"""What only the posts service holds in its runtime (``agora.runtime.Runtime.parts``)."""

from __future__ import annotations

from dataclasses import dataclass

from agora.cache import CacheService
from agora.services.posts.service import PostsService


@dataclass(frozen=True, slots=True, kw_only=True)
class PostsParts:
    posts: PostsService
    cache: CacheService
