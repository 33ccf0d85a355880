"""Load llama.cpp's shared libraries with the GIL released, ahead of `import llama_cpp`.

ctypes.CDLL holds the GIL for the whole dlopen (CPython's _ctypes dlopen). For a CPU build that is
a few milliseconds; a CUDA build's libllama brings in cuBLAS (libcublasLt alone is ~540 MB), and
measured here the other threads of a process stood still for 240-320 ms while it loaded (7-12 ms
when the same file went through libc's dlopen called by ctypes, which releases the GIL for a
foreign call). `jarvis serve` imports its HTTP stack on the main thread while the model opens on
another, so a GIL held through that load comes straight out of launch-to-/health. After the load
here, llama_cpp's own CDLL of the same file finds it loaded and returns at once, with the same
handle and the same RTLD_LOCAL scope ctypes gives it.

Linux only. Anywhere else, or when anything here fails, it does nothing and `import llama_cpp`
loads the library as it always did (and reports a missing library its own way).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
from pathlib import Path


def llama_library_path() -> Path | None:
    """The libllama that `import llama_cpp` will load (its LLAMA_CPP_LIB_PATH override included),
    found without importing the package."""
    override = os.environ.get("LLAMA_CPP_LIB_PATH")
    if override:
        base = Path(override)
    else:
        spec = importlib.util.find_spec("llama_cpp")
        if spec is None or not spec.submodule_search_locations:
            return None
        base = Path(next(iter(spec.submodule_search_locations))) / "lib"
    path = base / "libllama.so"
    return path if path.exists() else None


def preload_llama() -> bool:
    """Load libllama and everything it needs (ggml, its backends, CUDA's libraries) through libc's
    dlopen without the GIL. True when loaded; False when not on Linux or not loaded (no harm done)."""
    if not sys.platform.startswith("linux"):
        return False
    path = llama_library_path()
    if path is None:
        return False
    try:
        dlopen = ctypes.CDLL(None).dlopen
    except (OSError, AttributeError):
        return False
    dlopen.restype, dlopen.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_int]
    # RTLD_NOW | RTLD_LOCAL: what ctypes.CDLL asks for, so its later dlopen is the same load.
    return bool(dlopen(os.fsencode(path), os.RTLD_NOW | os.RTLD_LOCAL))
