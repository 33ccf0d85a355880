"""llama.cpp's libraries loaded ahead of `import llama_cpp` with the GIL released
(engine/native_preload.py): the same file llama_cpp loads, the same load, and other threads run
Python while it is under way."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from jarvis.engine.native_preload import llama_library_path

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the preload is Linux's")


def run_python(code: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **(env or {})})
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_the_library_found_is_the_one_llama_cpp_loads():
    import llama_cpp.llama_cpp as bindings

    assert llama_library_path() is not None
    assert os.path.samefile(llama_library_path(), bindings._lib._name)


@linux_only
def test_after_the_preload_llama_cpp_loads_nothing_more():
    """The preload maps libllama and its ggml libraries; `import llama_cpp` then maps no new file."""
    out = run_python("""
        import sys
        from jarvis.engine.native_preload import preload_llama

        def mapped():
            return {line.split()[-1] for line in open("/proc/self/maps") if ".so" in line}

        assert "llama_cpp" not in sys.modules
        assert preload_llama()
        before = mapped()
        import llama_cpp
        llama_cpp.llama_backend_init()
        new = sorted(p for p in mapped() - before if "/llama_cpp/" in p or "ggml" in p or "llama" in p)
        print(any("libllama.so" in p for p in before), any("libggml" in p for p in before), new)
    """)
    assert out.split() == ["True", "True", "[]"], out


@linux_only
def test_other_threads_run_python_while_the_library_loads(tmp_path):
    """By construction, not by timing: the "library" is a FIFO, so the preload's dlopen blocks
    reading it until this process's main thread writes to it. The main thread can only write if
    the preload's thread let go of the GIL for the dlopen; ctypes.CDLL's own load would hold it
    and the process would hang (the timeout below)."""
    fifo = tmp_path / "libllama.so"
    os.mkfifo(fifo)
    code = """
        import threading
        from jarvis.engine.native_preload import preload_llama

        result = []
        loader = threading.Thread(target=lambda: result.append(preload_llama()))
        loader.start()
        with open(FIFO, "wb") as f:  # returns once the dlopen has the FIFO open for reading
            f.write(b"not an ELF file")  # Python code on this thread, during that dlopen
        loader.join()
        print("main thread ran during the load; loaded:", result[0])
    """.replace("FIFO", repr(str(fifo)))
    try:
        out = run_python(code, env={"LLAMA_CPP_LIB_PATH": str(tmp_path)}, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the main thread could not run while the preload's dlopen was under way: it held the GIL")
    assert "main thread ran during the load; loaded: False" in out
