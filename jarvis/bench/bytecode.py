"""Start-up benches measure the product as pip installs it: with its bytecode compiled.

pip compiles every module of a wheel to `__pycache__` when it installs it. A source checkout
compiles on first import and writes the result, unless PYTHONDONTWRITEBYTECODE is set (as on the
development machines here): then every launch compiled all ~170 JARVIS modules again, which was
0.33 s of `jarvis serve`'s 1.39 s to a first token (1.05 s with the bytecode in place).
"""

from __future__ import annotations

import compileall
import importlib.util
from pathlib import Path


def compile_packages(*names: str) -> list[str]:
    """Compile each named package's modules where they lie (up-to-date files are left alone);
    returns the folders it compiled. A read-only install (already compiled by pip) is skipped."""
    done = []
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        for folder in spec.submodule_search_locations:
            if compileall.compile_dir(folder, quiet=2):  # False where it cannot write (pip compiled it)
                done.append(str(Path(folder)))
    return done
