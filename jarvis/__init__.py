"""JARVIS core: local GGUF models in-process, with live performance telemetry.

The core never imports the desktop (PySide6, qasync, ui); an import-linter contract checks it.
"""

__version__ = "0.1.0"
