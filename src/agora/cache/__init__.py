"""Redis: the client factory (standalone or Sentinel) and the CacheService (cache-aside)."""

from agora.cache.service import CacheService, Loaded, running_cache, stamp

__all__ = ["CacheService", "Loaded", "running_cache", "stamp"]
