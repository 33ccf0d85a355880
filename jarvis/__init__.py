"""JARVIS core: local GGUF models in-process, with live performance telemetry.

The core never imports the desktop (PySide6, qasync, ui); an import-linter contract checks it.
"""

import os

__version__ = "0.1.0"

# llama.cpp's CPU threads meet at an OpenMP barrier many times per token. libgomp lets a waiting
# thread spin 300,000 rounds by default; when the machine is busy the thread it waits for may have
# no core, and the spin eats that core's time. Measured here, bundled model, 2 threads, 64 tokens:
# with 3 busy processes the default spin did not finish 64 tokens in 60 s (0.24 tok/s in another
# run), 1,000 rounds gave 9.4-10.1 tok/s and no spin at all (OMP_WAIT_POLICY=PASSIVE) 9.4-9.8; on
# the quiet machine 1,000 rounds gave 92-93 tok/s, the default 90-98 and no spin 31. Read by libgomp
# when llama.cpp's library loads, so it is set before anything imports llama_cpp; a user's own
# GOMP_SPINCOUNT (or OMP_WAIT_POLICY) wins.
# SPIN_ENV: what this set, for a side-by-side bench to give another server the same (jarvis/bench/peer_bench.py).
SPIN_ENV: dict[str, str] = {}
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    SPIN_ENV["GOMP_SPINCOUNT"] = os.environ["GOMP_SPINCOUNT"] = "1000"
