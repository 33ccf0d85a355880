"""The desktop application (built in the desktop issue). Until then, `make run` chats in the terminal."""

from __future__ import annotations


def main(settings) -> int:
    from jarvis.terminal_chat import run_terminal_chat

    return run_terminal_chat(settings)
