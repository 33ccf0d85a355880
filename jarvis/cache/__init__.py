"""Response cache levels behind one interface (CacheLevels), and coalescing of identical
in-flight requests. See levels.py for the map."""

from jarvis.cache.keys import cache_key
from jarvis.cache.levels import CacheHit, CacheLevels, cache_path
from jarvis.cache.memory import CacheStats, ResponseCache
from jarvis.cache.shared import REPLAYED, SharedGeneration, replay

__all__ = ["CacheHit", "CacheLevels", "CacheStats", "REPLAYED", "ResponseCache", "SharedGeneration", "cache_key",
           "cache_path", "replay"]
