"""The JARVIS desktop: a chat window and a live System Monitor on one qasync loop."""

from ui.pyside_guard import immortalize_singletons

immortalize_singletons()  # before any Qt callback runs: see ui/pyside_guard.py
