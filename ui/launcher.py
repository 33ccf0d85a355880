"""The `jarvis` console script: the core CLI, with the desktop as its default command."""

from __future__ import annotations

import sys

from jarvis.cli import main as cli_main


def _gui(settings) -> int:
    from ui.app import main as gui_main  # Qt is imported only when the window is wanted

    return gui_main(settings)


def main(argv: list[str] | None = None) -> int:
    return cli_main(argv, gui=_gui)


if __name__ == "__main__":
    sys.exit(main())
