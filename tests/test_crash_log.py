"""A native crash leaves evidence: after jarvis.crash_log.enable, a segmentation fault (a
deterministic one: reading address 0 through ctypes) writes every thread's Python stack into
the app's log file, after the process's own log records."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.support.process import ROOT

CRASHER = textwrap.dedent("""
    import ctypes, logging, sys, threading
    from pathlib import Path
    from jarvis import crash_log

    crash_log.enable(Path(sys.argv[1]))
    logging.getLogger("jarvis.test").warning("about to crash")
    ready = threading.Event()

    def engine_like_thread():
        ready.set()
        threading.Event().wait()

    threading.Thread(target=engine_like_thread, name="engine:test", daemon=True).start()
    ready.wait()
    ctypes.string_at(0)  # SIGSEGV
""")


def test_a_segfault_writes_every_threads_stack_into_the_log_file(tmp_path):
    log = tmp_path / "logs" / "jarvis.log"
    done = subprocess.run([sys.executable, "-c", CRASHER, str(log)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode != 0
    text = log.read_text()
    assert "WARNING jarvis.test [MainThread]: about to crash" in text
    assert "Fatal Python error: Segmentation fault" in text
    assert "in engine_like_thread" in text  # the other thread's stack too
    assert text.index("about to crash") < text.index("Fatal Python error")
