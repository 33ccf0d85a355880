"""Reads many GGUF headers in a child process, for the catalog's scans of many new files.

Header parsing is pure Python that holds the GIL (tens of ms a file, most of it walking the
vocabulary). On a thread of the app, the
event loop would wait up to a switch interval (5 ms) for each of its steps for as long as the scan
lasts; in a child it waits for nothing. The child is `python -m jarvis.catalog.reader`: one JSON
line in per file ([path, name, source]), one JSON line out per file (the LocalModel), in order.
A plain subprocess rather than multiprocessing: spawn re-imports the parent's __main__, which
scripts and embedders do not always allow.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

from jarvis.catalog.index import info_from_json, info_to_json
from jarvis.catalog.model_info import LocalModel, read_gguf_info


def read_in_child(todo: list[tuple[Path, str, str]], stop: Callable[[], bool]) -> dict[Path, LocalModel] | None:
    """{path: LocalModel} for every (path, name, source); None when `stop()` turned true meanwhile.
    Raises OSError when the child cannot start or dies."""
    child = subprocess.Popen([sys.executable, "-m", "jarvis.catalog.reader"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        child.stdin.write("".join(json.dumps([str(p), n, s]) + "\n" for p, n, s in todo))
        child.stdin.close()
        out: dict[Path, LocalModel] = {}
        for path, _, _ in todo:
            if stop():
                return None
            line = child.stdout.readline()
            if not line:
                raise OSError(f"the header reader stopped after {len(out)} of {len(todo)} files "
                              f"(exit code {child.wait()})")
            out[path] = info_from_json(json.loads(line))
        return out
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        for pipe in (child.stdin, child.stdout):
            with contextlib.suppress(OSError):  # stdin may still hold unwritten text for a dead child
                pipe.close()


def main() -> None:
    if hasattr(os, "nice"):
        os.nice(10)  # background work: the app's own process gets the CPU first
    jobs = [json.loads(line) for line in sys.stdin]  # all of it first: the parent never blocks writing
    for path, name, source in jobs:
        info = read_gguf_info(Path(path), name, source)  # never raises: problems land in info.error
        print(json.dumps(info_to_json(info)), flush=True)


if __name__ == "__main__":
    main()
