"""Response cache levels behind one interface (CacheLevels), and coalescing of identical
in-flight requests. See levels.py for the map."""

from jarvis.cache.keys import cache_key
from jarvis.cache.levels import CacheHit, CacheLevels, cache_path
from jarvis.cache.memory import CacheStats, ResponseCache
from jarvis.cache.shared import SharedGeneration, replay

__all__ = ["CacheHit", "CacheLevels", "CacheStats", "ResponseCache", "SharedGeneration", "cache_key",
           "cache_path", "replay"]
