"""JARVIS core: local GGUF models in-process, with live performance telemetry.

The core never imports the desktop (PySide6, qasync, ui); an import-linter contract checks it.
"""

import os

__version__ = "0.1.0"

# llama.cpp's CPU threads meet at an OpenMP barrier many times per token. libgomp's default lets a
# waiting thread spin; when the machine is busy (a browser, a build, another app) the thread it
# waits for may have no core, and the spin eats that core's time: measured here, 2 engine threads
# under load decoded 0.24 tok/s spinning against 54 tok/s with passive waits (and 11 with 1
# thread). Read by libgomp when llama.cpp's library loads, so it is set before anything imports
# llama_cpp; a user's own OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
