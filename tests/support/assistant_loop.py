"""An Assistant on a fresh event loop, and a loop that counts its cross-thread callbacks: what
the engine's wake-up tests (test_engine_wakeups, test_engine_doorbell, test_engine_step_records)
run on."""

from __future__ import annotations

import asyncio

from jarvis.assistant import Assistant

PROMPTS = ["Count from 1 to 5.", "Name two fruits.", "What is 2 + 2?", "Say hello in French."]


def with_assistant(settings, body):
    """body(assistant) on a fresh Assistant in its own event loop, closed after."""
    async def run():
        a = Assistant(settings)
        try:
            return await body(a)
        finally:
            await a.close()

    return asyncio.run(run())


class CountingLoop(asyncio.SelectorEventLoop):
    """A real loop that counts the cross-thread callbacks it is handed."""

    def __init__(self) -> None:
        super().__init__()
        self.threadsafe_calls = 0

    def call_soon_threadsafe(self, *args, **kwargs):
        self.threadsafe_calls += 1
        return super().call_soon_threadsafe(*args, **kwargs)
