"""Queue position: with every slot busy, waiting requests know their place (1 = next), in order;
it reaches the stream as Chunk.queue, the chat as "waiting: 2nd in line", an SSE answer as
`: queued position=N` comment lines, and the record (the `jarvis` figures) as queue_position.

The worker is held inside a real engine step (Engine.step_hook) while the extra requests queue:
nothing is admitted until the test lets go, so the positions are known by construction."""

from __future__ import annotations

import asyncio
import json
import threading

import aiohttp
import pytest

from jarvis.assistant import Assistant
from jarvis.request_queue import PriorityRequestQueue
from jarvis.request import QueuePosition

from bench.support.chat import greedy
from bench.support.server import ServerThread
from tests.support.until import until_async
from tests.ui_support import drive, make_desktop, qloop, ui_env, ui_settings  # noqa: F401 (fixtures)

from ui.chat.answer import ordinal, waiting_line


class Gate:
    """A step hook that holds the worker (inside a step, slots busy) from `close()` to `open()`."""

    def __init__(self, engine) -> None:
        self.closed = threading.Event()
        self.held = threading.Event()
        self.opened = threading.Event()
        engine.step_hook = self._hook

    def _hook(self, _engine) -> None:
        if self.closed.is_set() and not self.opened.is_set():
            self.held.set()
            self.opened.wait(120)

    def close(self) -> None:
        self.closed.set()

    def open(self) -> None:
        self.opened.set()


class Item:
    def __init__(self, name: str) -> None:
        self.name = name


def test_queue_reports_positions_in_order_and_an_estimate_from_admissions():
    clock = [0.0]
    told: list[tuple[str, int, float | None]] = []
    items = {name: Item(name) for name in ("a", "b", "c", "d", "urgent")}  # the queue compares by identity
    q = PriorityRequestQueue(10, on_position=lambda item, p, eta: told.append((item.name, p, eta)),
                             clock=lambda: clock[0])
    assert q.put(items["a"], 1, headroom=1) == 0  # a slot is free for it: not waiting, nothing told
    assert told == []
    for item in "bcd":
        q.put(items[item], 1, headroom=1)  # the slot is still free (for "a", which the worker has not taken)
    assert told == [("b", 1, None), ("c", 2, None), ("d", 3, None)]
    told.clear()
    assert q.put(items["urgent"], 0, headroom=1) == 0  # a higher priority takes the free slot: the rest move back
    assert told == [("a", 1, None), ("b", 2, None), ("c", 3, None), ("d", 4, None)]
    told.clear()
    assert q.pop() is items["urgent"]  # the free slot taken: "a" is next, as it was told; nobody else moves
    assert told == []
    clock[0] = 2.0
    assert q.pop() is items["a"]  # two seconds between admissions with requests waiting: 2 s a place
    # approx: each wait is a computed estimate (the place times the seconds between admissions)
    assert told == [("b", 1, pytest.approx(2.0)), ("c", 2, pytest.approx(4.0)), ("d", 3, pytest.approx(6.0))]
    told.clear()
    assert q.remove(items["c"])
    assert told == [("d", 2, pytest.approx(4.0))] and q.position(items["d"]) == 2 and q.position(items["c"]) is None


def test_waiting_line_words():
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101)] == \
        ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st"]
    assert waiting_line(QueuePosition(2, 3.2), since=10.0, now=10.0) == "waiting: 2nd in line, about 3 s"
    assert waiting_line(QueuePosition(1, None), since=0.0) == "waiting: 1st in line"


def test_three_waiting_behind_four_busy_slots_know_their_places(settings):
    async def body():
        a = Assistant(settings)
        try:
            await a.catalog.ready()  # the first scan (Assistant() no longer scans)
            name = a.default_model()
            await a.manager.load(name)
            engine = a.manager.engine_of(name)
            gate = Gate(engine)
            seen: dict[int, list] = {i: [] for i in range(7)}

            async def consume(i, request):
                async for chunk in a.stream(request):
                    seen[i].append(chunk)

            busy = [asyncio.ensure_future(consume(i, greedy(a, f"Count from 1 to 50, number {i}.", max_tokens=64)))
                    for i in range(4)]
            await until_async(lambda: engine.active_slots == 4)
            gate.close()
            await asyncio.to_thread(gate.held.wait, 120)
            waiting = []
            for i in range(4, 7):
                waiting.append(asyncio.ensure_future(consume(i, greedy(a, f"Name a colour, number {i}.", max_tokens=8))))
                await until_async(lambda: engine.queue_depth == i - 3)  # submitted in this order
            await until_async(lambda: all(any(c.queue for c in seen[i]) for i in range(4, 7)))
            gate.open()
            await asyncio.gather(*busy, *waiting)
            return seen
        finally:
            await a.close()

    seen = asyncio.run(body())
    for i in range(4):  # a slot was free for each of these
        assert not any(c.queue for c in seen[i]) and seen[i][-1].record.queue_position == 0
    for place, i in enumerate(range(4, 7), start=1):
        positions = [c.queue.position for c in seen[i] if c.queue]
        assert positions[0] == place  # 1, 2, 3 in the order they came
        assert positions == sorted(positions, reverse=True) and positions[-1] >= 1  # only ever forward
        text_at = next(k for k, c in enumerate(seen[i]) if c.text)
        assert all(c.queue is None for c in seen[i][text_at:])  # no position after the first token
        record = seen[i][-1].record
        assert record.status == "ok" and record.queue_position == place and record.queue_ms > 0


def test_sse_answers_send_queued_comments_and_the_position_in_jarvis(settings):
    with ServerThread(settings) as server:
        engine = server.engine()
        gate = Gate(engine)

        async def body():
            async with aiohttp.ClientSession(server.url) as session:
                async def ask(i: int, max_tokens: int) -> list[str]:
                    payload = {"model": server.model, "stream": True, "temperature": 0, "max_tokens": max_tokens,
                               "cache": False, "messages": [{"role": "user", "content": f"Say hi, number {i}."}]}
                    async with session.post("/v1/chat/completions", json=payload) as resp:
                        assert resp.status == 200
                        return [line.decode().rstrip("\n") async for line in resp.content if line.strip()]

                busy = [asyncio.ensure_future(ask(i, 64)) for i in range(4)]
                await until_async(lambda: engine.active_slots == 4)
                gate.close()
                await asyncio.to_thread(gate.held.wait, 120)
                waiting = []
                for i in range(4, 7):
                    waiting.append(asyncio.ensure_future(ask(i, 8)))
                    await until_async(lambda: engine.queue_depth == i - 3)
                await asyncio.sleep(0.2)  # the comment lines are on their way (the test checks them below)
                gate.open()
                return await asyncio.gather(*busy), await asyncio.gather(*waiting)

        busy, waiting = asyncio.run_coroutine_threadsafe(body(), server.loop).result(300)

    def final_jarvis(lines):
        events = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
        return next(e["jarvis"] for e in events if "jarvis" in e)

    for lines in busy:
        assert not any(line.startswith(": queued") for line in lines)
        assert final_jarvis(lines)["queue_position"] == 0
    for place, lines in enumerate(waiting, start=1):
        comments = [line for line in lines if line.startswith(": queued position=")]
        assert comments and comments[0].startswith(f": queued position={place}")
        first_data = next(k for k, line in enumerate(lines) if line.startswith("data: "))
        assert lines.index(comments[0]) < first_data + 2  # before any text: right after the role event
        assert final_jarvis(lines)["queue_position"] == place
        assert lines[-1] == "data: [DONE]"


def test_the_chat_shows_the_place_in_line(make_desktop, drive):
    d = make_desktop()
    chat, manager = d.chat, d.runtime.assistant.manager
    name = d.runtime.assistant.default_model()
    drive.run(manager.load(name))
    engine = manager.engine_of(name)
    gate = Gate(engine)
    answers = []
    for i in range(4):
        chat.new_conversation()
        answers.append(chat.send(f"Count from 1 to 50, number {i}."))
    drive.wait(lambda: engine.active_slots == 4)
    gate.close()
    drive.wait(gate.held.is_set)
    for i in range(4, 7):
        chat.new_conversation()
        answers.append(chat.send(f"Name a colour, number {i}."))
        drive.wait(lambda: engine.queue_depth == i - 3)
    drive.wait(lambda: all(a.queue_positions for a in answers[4:]))
    assert [a.queue_positions[0] for a in answers[4:]] == [1, 2, 3]
    # The last one is on screen: its pending answer says where it waits.
    assert answers[-1].widget is not None and answers[-1].widget.state.text().startswith("waiting: 3rd in line")
    gate.open()
    drive.wait(lambda: all(a.task.done() for a in answers))
    assert [a.record.queue_position for a in answers] == [0, 0, 0, 0, 1, 2, 3]
    assert answers[-1].widget.state.text() == "" or not answers[-1].widget.state.text().startswith("waiting")
