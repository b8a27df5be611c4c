"""Redis, in one place: the client (standalone or Sentinel), the key namespace (``keys``), the
uses and their policies without Redis (``uses``) and the access layer that applies them."""

from agora.redis.access import Degrade, RedisAccess, RedisUnavailable, Use

__all__ = ["Degrade", "RedisAccess", "RedisUnavailable", "Use"]
