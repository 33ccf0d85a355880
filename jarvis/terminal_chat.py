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


async def _chat(settings, model: str, system: str | None, show_stats: bool) -> int:
    from jarvis.assistant import Assistant

    assistant = Assistant(settings)
    await assistant.start()  # warm the model while the user types
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
    await assistant.catalog.ready()  # the default model's name, from the first scan (on the catalog's thread)
    print(f"JARVIS on {model or assistant.default_model()}. {HELP}", flush=True)
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

            async def answer() -> None:
                async for chunk in assistant.stream(request):
                    parts.append(chunk.text)
                    sys.stdout.write(chunk.text)
                    sys.stdout.flush()
                    if chunk.done and chunk.record and show_stats:
                        print(f"\n{stats_line(chunk.record, detail=True)}", file=sys.stderr, flush=True)

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
            history += [Message("user", line), Message("assistant", "".join(parts))]
    finally:
        await assistant.close()


def _read_line() -> str:
    sys.stdout.write("> ")
    sys.stdout.flush()
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line


def run_terminal_chat(settings, model: str = "", system: str | None = None, show_stats: bool = False) -> int:
    return asyncio.run(_chat(settings, model, system, show_stats))
