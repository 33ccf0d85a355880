"""Render the desktop offscreen into PNGs: the chat mid-conversation, the System Monitor after some
real load. `python -m ui.screenshots docs/screenshots` (`make screenshots`).

Everything shown is real: the bundled model answers, the hub ticks at 1 Hz. A private data dir is
used, so your own conversations are neither read nor shown.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


async def _wait(condition, timeout_s: float = 300) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError("the screenshot scenario took too long")
        await asyncio.sleep(0.05)


async def scenario(out: Path, data_dir: str) -> list[Path]:
    from jarvis.config import load_settings

    from ui.app import Desktop

    env = {k: v for k, v in os.environ.items() if not k.startswith("JARVIS_")}
    env.update({"JARVIS_GENERAL_DATA_DIR": data_dir, "JARVIS_MODELS_WARMUP": "default", "JARVIS_SERVER_PORT": "0",
                "JARVIS_GENERATION_TEMPERATURE": "0", "JARVIS_GENERATION_MAX_TOKENS": "160"})
    desktop = Desktop(load_settings(environ=env))
    window, chat = desktop.window, desktop.chat
    window.resize(1280, 820)
    window.show()
    await desktop.start(http=True, warmup=True)
    await _wait(lambda: desktop.runtime.assistant.manager.loaded(), 120)  # the warm-up
    written = []
    try:
        # Some load first, so the monitor has history: rounds of 4 answers at once, one repeated (a cache hit).
        prompts = ["What is a CPU?", "Name three planets.", "What is Python?", "Give a tip for sleeping well."]
        for round_ in range(3):
            answers = []
            for prompt in prompts[round_:] + prompts[:round_]:
                await chat.new_conversation()
                answers.append(await chat.send(prompt))
            await _wait(lambda: all(a.task.done() for a in answers))
            await asyncio.sleep(1.5)
        # The conversation on screen: one finished answer, the next one caught while it streams.
        conv = await chat.new_conversation()
        await chat.rename(conv, "Reversing strings in Python")
        first = await chat.send("Write a Python function that reverses a string. Use a code block.")
        await _wait(first.task.done)
        second = await chat.send("Now explain in a short bulleted list how it works.")
        await _wait(lambda: len(second.text) > 120 or second.task.done())  # a short answer ends first
        window.tabs.setCurrentWidget(chat)
        await asyncio.sleep(0.1)  # let the throttled render and the layout catch up
        path = out / "chat.png"
        window.grab().save(str(path))
        written.append(path)
        await _wait(second.task.done)
        await asyncio.sleep(1.2)  # one more hub tick
        window.tabs.setCurrentWidget(desktop.monitor)
        desktop.monitor.refresh()
        await asyncio.sleep(0.4)  # the charts are revealed one by one after a tab switch
        path = out / "monitor.png"
        window.grab().save(str(path))
        written.append(path)
    finally:
        await desktop.shutdown()
    return written


def main(argv: list[str] | None = None) -> int:
    from PySide6.QtWidgets import QApplication

    from ui.async_bridge import new_event_loop

    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else "docs/screenshots")
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication([])
    loop = new_event_loop(app)
    asyncio.set_event_loop(loop)
    with tempfile.TemporaryDirectory() as data_dir, loop:
        written = loop.run_until_complete(scenario(out, data_dir))
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
