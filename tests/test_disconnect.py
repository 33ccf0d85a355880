"""A client that leaves cancels its request, with nothing polling: aiohttp cancels the handler of a
closed connection (handler_cancellation), which cancels the request wherever it is, decoding or
still queued. Before, each waiting handler woke 50 times a second to look at its socket."""

from __future__ import annotations

import asyncio

import aiohttp

from bench.support.server import ServerThread
from bench.support.settings import make_settings
from tests.support.until import until

LONG = {"model": "", "prompt": "1, 2, 3, 4, 5,", "max_tokens": 400, "temperature": 0, "cache": False}


def polling_timers(loop: asyncio.AbstractEventLoop) -> int:
    """Live timers of asyncio.wait / wait_for timeouts on the loop (what a polling handler keeps)."""
    return sum(1 for h in loop._scheduled  # noqa: SLF001 - the loop's own timer heap, read only
               if not h.cancelled() and getattr(h._callback, "__name__", "") == "_release_waiter")


def test_queued_requests_wait_without_polling_and_leaving_cancels_them(tmp_path):
    settings = make_settings(tmp_path, JARVIS_ENGINE_BATCH_SIZE="1")
    with ServerThread(settings) as s:
        engine = s.engine()
        perf = s.runtime.hub.perf
        cancelled = perf.counters().get("requests.cancelled", 0)

        async def scenario():
            async with aiohttp.ClientSession() as running_session, aiohttp.ClientSession() as waiting_session:
                running = asyncio.ensure_future(running_session.post(s.base_url + "/completions", json=LONG))
                await asyncio.to_thread(until, lambda: engine.active_slots == 1)
                waiting = [asyncio.ensure_future(waiting_session.post(s.base_url + "/completions",
                                                                      json={**LONG, "prompt": f"{i}, {i + 1},"}))
                           for i in range(3)]
                await asyncio.to_thread(until, lambda: engine.queue_depth == 3)
                timers = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_count(s.loop), s.loop))
                for task in waiting:  # the three clients give up while still queued
                    task.cancel()
                await waiting_session.close()
                await asyncio.to_thread(until, lambda: engine.queue_depth == 0)
                still_running = engine.active_slots
                running.cancel()
                return timers, still_running

        timers, still_running = asyncio.run(scenario())
        until(lambda: engine.active_slots == 0)  # the first client left too: its slot is free
        until(lambda: perf.counters().get("requests.cancelled", 0) == cancelled + 4)
    assert timers == 0  # three handlers waiting, not one timer between them
    assert still_running == 1  # leaving the queue did not disturb the request being decoded


async def _count(loop: asyncio.AbstractEventLoop) -> int:
    return polling_timers(loop)
