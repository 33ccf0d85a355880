"""`jarvis chat`: chat in the terminal."""

from __future__ import annotations

from jarvis.cli.common import add_remote_option, settings_for


def add_parser(sub) -> None:
    c = sub.add_parser("chat", help="chat in the terminal")
    c.add_argument("--model")
    c.add_argument("--system")
    c.add_argument("--stats", action="store_true", help="print each answer's figures to stderr")
    c.add_argument("--tools", action="store_true",
                   help="let the model call the tools of your MCP servers (each call asked y/n/a)")
    c.add_argument("--tool-choice", default="auto", metavar="auto|required|TOOL",
                   help="with --tools: whether each answer may (auto) or must call a tool, or which one")
    add_remote_option(c)
    c.set_defaults(func=run)


def run(args) -> int:
    from jarvis.terminal_chat import run_terminal_chat

    return run_terminal_chat(settings_for(args), model=args.model or "", system=args.system, show_stats=args.stats,
                             tools=args.tools, tool_choice=args.tool_choice)
