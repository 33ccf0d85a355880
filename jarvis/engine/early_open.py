"""A model's open begun ahead of its engine, on a thread of its own (see opening.py for why).

This module imports nothing of llama.cpp: `jarvis serve` starts the thread before its other
imports, and everything that loads or asks llama.cpp happens on that thread. Its libraries are
loaded first without the GIL (native_preload.py), then the check for a usable GPU (a CUDA
build initialises the driver there: a call that holds no GIL but that the main thread waited
for when it was made there), then the open. The main thread meanwhile imports the runtime and
the HTTP stack.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from jarvis.engine.config import EngineConfig
from jarvis.engine.native_preload import preload_llama
from jarvis.errors import ModelLoadError

if TYPE_CHECKING:
    from jarvis.engine.opening import Opened, OpenSpec

log = logging.getLogger("jarvis.engine")


class EarlyOpen:
    """open_model() of `path` for an engine of `config`, begun now on a thread of its own."""

    def __init__(self, path: Path, config: EngineConfig):
        self.path, self.config = Path(path), config
        self._spec: OpenSpec | None = None
        self._opened: Opened | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._open, name="jarvis-early-open", daemon=True)
        self._thread.start()

    def _open(self) -> None:
        preload_llama()
        from jarvis.engine import backend
        from jarvis.engine.opening import OpenSpec, open_model

        try:
            spec, _ = OpenSpec.for_engine(self.path, self.config)
            with backend.logs_discarded():  # ~2,300 lines that would each wait for the GIL (backend.py)
                opened = open_model(spec)
        except ModelLoadError as e:  # the engine's own open will meet (and report) the same, with its logs
            log.info("opening %s ahead of its engine failed: %s", self.path, e.reason)
            return
        with self._lock:
            self._spec, self._opened = spec, opened

    @property
    def spec(self) -> OpenSpec | None:
        """The open that was made (waits for it); None when it failed."""
        self._thread.join()
        return self._spec

    def _claim(self) -> Opened | None:
        """What the open made, once (the next caller gets None); waits for it to finish."""
        self._thread.join()
        with self._lock:  # take and discard may come from different threads
            opened, self._opened = self._opened, None
        return opened

    def take(self, spec: OpenSpec) -> Opened | None:
        """Its handles when `spec` is the one opened (the caller owns them from now on), else None,
        and the handles are freed. Only the first call gets them."""
        opened = self._claim()
        if opened is not None and spec != self._spec:
            log.info("the model opened ahead (%s) is not the one asked for; freeing it", self.path)
            opened.close()
            return None
        return opened

    def discard(self) -> None:
        """Free the handles if nobody took them (waits for the open to finish)."""
        opened = self._claim()
        if opened is not None:
            opened.close()
