"""The CacheService (cache-aside over Redis, through ``agora.redis``)."""

from agora.cache.service import CacheService, Loaded, running_cache, stamp

__all__ = ["CacheService", "Loaded", "running_cache", "stamp"]
