"""A model file's content identity: a hash of its header bytes, computed once per (path, size,
mtime) and only on the cache's disk thread (reading a file never happens on the loop)."""

from __future__ import annotations

import hashlib
import logging
import threading

log = logging.getLogger("jarvis.cache")

HEADER_BYTES = 1 << 20  # GGUF magic, version, tensor count and the metadata that follows


class FileIdentities:
    def __init__(self) -> None:
        self._known: dict[tuple, str] = {}
        self._lock = threading.Lock()
        self.reads = 0  # how many files were hashed (once per identity)

    def of(self, model_identity: tuple) -> str:
        """'' for a model with no file (a remote one); else a hex digest of the header."""
        if len(model_identity) != 3 or not isinstance(model_identity[1], int):
            return ""  # a remote model: (server, model id)
        with self._lock:
            known = self._known.get(model_identity)
        if known is not None:
            return known
        path = model_identity[0]
        try:
            with open(path, "rb") as f:
                head = f.read(HEADER_BYTES)
        except OSError as e:
            # Unreadable now: key on size and mtime alone this time, and try again next time.
            log.warning("Cannot read the header of %s for the disk cache's key (%s).", path, e)
            return "unreadable"
        digest = hashlib.blake2b(head, digest_size=16).hexdigest()
        with self._lock:
            self._known[model_identity] = digest
            self.reads += 1
        return digest
