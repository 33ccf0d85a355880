"""The `jarvis` console script: the core CLI, with the desktop as its default command."""

from __future__ import annotations

import os
import sys

from jarvis.cli import main as cli_main


def has_display() -> bool:
    """A window can be shown: not Linux, a display server is there, or Qt was told a platform."""
    if not sys.platform.startswith("linux"):
        return True
    return any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def _gui(settings) -> int:
    if not has_display():
        # An offscreen window nobody can see helps no one: chat in the terminal instead.
        print("No display found (DISPLAY/WAYLAND_DISPLAY unset): starting the terminal chat. "
              "Run JARVIS from a desktop session to open the window.", file=sys.stderr)
        from jarvis.terminal_chat import run_terminal_chat

        return run_terminal_chat(settings)
    from ui.app import main as gui_main  # Qt is imported only when the window is wanted

    return gui_main(settings)


def main(argv: list[str] | None = None) -> int:
    return cli_main(argv, gui=_gui)


if __name__ == "__main__":
    sys.exit(main())
