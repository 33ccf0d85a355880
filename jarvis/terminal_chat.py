"""`jarvis chat`: a chat in the terminal. /exit or Ctrl-D quits; Ctrl-C stops the current answer."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

from jarvis.errors import JarvisError
from jarvis.stats_line import stats_line
from jarvis.request import Message

HELP = "Type a message and press Enter. /exit or Ctrl-D quits, Ctrl-C stops an answer, /reset starts over."


async def _chat(settings, model: str, system: str | None, show_stats: bool, tools: bool = False,
                tool_choice: str = "auto") -> int:
    from jarvis.assistant import Assistant

    assistant = Assistant(settings)
    await assistant.start()  # warm the model while the user types
    hub = tool_loop = None
    if tools:  # the MCP servers' tools, each call asked y/n/a; "always" holds for this chat
        from jarvis.mcp.hub import McpHub
        from jarvis.tools.loop import ToolLoop
        from jarvis.tools.terminal import terminal_approver

        hub = McpHub(settings.mcp, settings_file=settings.settings_file)
        tool_loop = ToolLoop(assistant, hub, terminal_approver(out=sys.stdout), max_rounds=settings.mcp.max_rounds,
                             result_max_kb=settings.mcp.result_max_kb)
    loop = asyncio.get_running_loop()
    history: list[Message] = []
    current: asyncio.Task | None = None

    def on_sigint() -> None:
        if current is not None and not current.done():
            current.cancel()
        else:
            print("\n(Ctrl-C stops an answer; /exit or Ctrl-D quits)", flush=True)

    with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows, nor off the main thread
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    print(f"JARVIS on {await assistant.resolve_model(model)}. {HELP}", flush=True)
    try:
        while True:
            try:
                line = await loop.run_in_executor(None, _read_line)
            except EOFError:
                print()
                return 0
            line = line.strip()
            if not line:
                continue
            if line in ("/exit", "/quit"):
                return 0
            if line == "/reset":
                history.clear()
                print("(new conversation)", flush=True)
                continue
            request = assistant.request(line, messages=history, system=system, model=model, operation="chat",
                                        source="cli")
            parts: list[str] = []
            added: list[Message] = []

            async def answer() -> None:
                if tool_loop is not None:
                    from jarvis.tools.loop import ToolEvent
                    from jarvis.tools.terminal import describe

                    turn = tool_loop.turn(request, tool_choice)
                    source = turn.__aiter__()
                else:
                    turn, source = None, assistant.stream(request)
                async for chunk in source:
                    if tool_loop is not None and isinstance(chunk, ToolEvent):
                        note = describe(chunk)
                        if note:
                            print(f"\n{note}", flush=True)
                        continue
                    parts.append(chunk.text)
                    sys.stdout.write(chunk.text)
                    sys.stdout.flush()
                    if chunk.done and chunk.record and show_stats:
                        print(f"\n{stats_line(chunk.record, detail=True)}", file=sys.stderr, flush=True)
                if turn is not None:
                    added.extend(turn.messages)

            current = loop.create_task(answer())
            try:
                await current
                print(flush=True)
            except asyncio.CancelledError:
                print(" [stopped]", flush=True)
            except JarvisError as e:
                print(f"\n[error] {e}", flush=True)
                continue
            finally:
                current = None
            # With tools: the calls and results too, so the next question can refer to them.
            history += [Message("user", line)] + (added or [Message("assistant", "".join(parts))])
    finally:
        if hub is not None:
            await hub.close()
        await assistant.close()


def _read_line() -> str:
    sys.stdout.write("> ")
    sys.stdout.flush()
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line


def run_terminal_chat(settings, model: str = "", system: str | None = None, show_stats: bool = False,
                      tools: bool = False, tool_choice: str = "auto") -> int:
    return asyncio.run(_chat(settings, model, system, show_stats, tools, tool_choice))
