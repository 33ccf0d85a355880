"""The `jarvis` console script: the core CLI, with the desktop as its default command."""

from __future__ import annotations

import sys

from jarvis.cli import main as cli_main
from jarvis.desktop_check import check_desktop


def _gui(settings) -> int:
    # Qt aborts the process when its platform plugin cannot load or reach the display, so ask
    # first (without importing Qt) and chat in the terminal with the reason instead.
    check = check_desktop()
    if not check.ok:
        print(f"{check.message()}\nStarting the terminal chat instead; `jarvis doctor` repeats this check.",
              file=sys.stderr)
        from jarvis.terminal_chat import run_terminal_chat

        return run_terminal_chat(settings)
    from ui.app import main as gui_main  # Qt is imported only when the window can open

    return gui_main(settings)


def main(argv: list[str] | None = None) -> int:
    return cli_main(argv, gui=_gui)


if __name__ == "__main__":
    sys.exit(main())
