"""Temporary folders for a bench run's servers (their data folder: history, settings), removed
when the bench's process exits. Every `jarvis serve` the benches started had left one in the
temporary folder (30 from one day's peer benches)."""

from __future__ import annotations

import atexit
import shutil
import tempfile


def scratch_dir(prefix: str) -> str:
    """A new folder under the temporary folder, gone when this process exits (normally or by an
    exception; not on SIGKILL)."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, True)
    return path
