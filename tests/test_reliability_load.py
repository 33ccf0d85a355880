"""Overload and faults through the Assistant: short versions (`make reliability` runs long ones).
Every wait is bounded; each scenario reports what it tried and what went wrong."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading

import pytest

from bench.reliability import load, storage
from jarvis.assistant import Assistant
from jarvis.engine.handles import LlamaModel
from jarvis.errors import EngineClosed
from bench.support.chat import greedy
from bench.support.settings import tune
from jarvis.request import ChatRequest
from tests.support.until import until_async


def _small(settings):
    return tune(settings, engine={"context_length": 512})


def _ok(result):
    assert not result.problems, "\n".join(map(str, result.problems))
    assert result.crashes == 0 and result.lost == 0 and result.handled == result.tried


@pytest.mark.timeout(900)
def test_overload_accepts_what_fits_and_refuses_the_rest_at_once(settings):
    result = asyncio.run(load.overload(_small(settings), n=60, max_queue=16, batch_size=4))
    _ok(result)
    assert result.notes["rejected"] > 0 and result.notes["accepted"] >= 16


@pytest.mark.timeout(900)
def test_cancel_storm_frees_every_slot_and_delivers_no_wrong_text(settings):
    result = asyncio.run(load.cancel_storm(_small(settings), n_cancel=60, n_normal=12))
    _ok(result)  # includes: every slot freed, and the next request answers as before the storm


@pytest.mark.timeout(900)
def test_unloading_or_evicting_a_busy_model_never_hangs(settings, tmp_path):
    result = asyncio.run(load.unload_under_load(_small(settings), tmp_path / "models", rounds=1, per_round=8))
    _ok(result)


def test_a_submit_that_races_close_is_refused_not_lost(settings):
    """A submit already under way when close() begins is refused with EngineClosed, never queued
    after close()'s drain (where it would wait forever). The interleaving is forced, not hoped for:
    the request's own validate(), which submit() calls after its first is-it-running check and
    before it takes the engine's lock, holds that submit until close() has begun."""
    submitting = threading.Event()
    close_began = threading.Event()

    @dataclasses.dataclass(frozen=True)
    class HeldRequest(ChatRequest):
        def validate(self) -> None:
            if threading.current_thread().name == "racing-submit":
                submitting.set()
                assert close_began.wait(120), "close() did not begin"
            super().validate()

    async def body():
        a = Assistant(_small(settings))
        outcome: list[BaseException | object] = []
        try:
            await a.catalog.ready()  # the first scan (Assistant() no longer scans)
            engine = (await a.manager.load(a.default_model())).engine
            plain = greedy(a, "hi", 4)
            request = HeldRequest(**{f.name: getattr(plain, f.name) for f in dataclasses.fields(plain)})
            loop = asyncio.get_running_loop()

            def racing_submit():
                try:
                    outcome.append(engine.submit(request, loop))
                except BaseException as e:  # noqa: BLE001 - what the submit got is the result
                    outcome.append(e)

            submitter = threading.Thread(target=racing_submit, name="racing-submit")
            submitter.start()
            await until_async(submitting.is_set)  # past submit()'s first check, against a running engine
            closer = threading.Thread(target=engine.close, name="closing")
            closer.start()
            await until_async(lambda: not engine.running)  # close() has begun
            close_began.set()
            await asyncio.to_thread(submitter.join)
            await asyncio.to_thread(closer.join)
            return outcome, engine.queue_depth
        finally:
            close_began.set()
            await a.close()

    outcome, left_queued = asyncio.run(body())
    assert len(outcome) == 1 and isinstance(outcome[0], EngineClosed), outcome
    assert left_queued == 0


def test_a_request_cancelled_during_its_model_load_leaks_no_engine(settings, monkeypatch):
    """Defect fixed: cancelling the request that started a load left the loaded engine (and its
    worker thread) behind, unknown to the manager; the requests sharing that load failed with an
    empty ModelLoadError. Now the orphan is closed and the sharers load it themselves.

    The first load is held inside llama.cpp's model load (a gate around the real LlamaModel) until
    the first request has been cancelled, so the cancel lands mid-load however fast the machine."""
    inside_load = threading.Event()
    release = threading.Event()
    loads: list[str] = []
    real_init = LlamaModel.__init__

    def gated_init(self, *args, **kwargs):
        loads.append(threading.current_thread().name)
        if len(loads) == 1:
            inside_load.set()
            assert release.wait(120), "the test never released the first load"
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(LlamaModel, "__init__", gated_init)

    async def body():
        a = Assistant(_small(settings))
        try:
            first = asyncio.ensure_future(a.chat(greedy(a, "hi", 4)))
            await until_async(inside_load.is_set)
            second = asyncio.ensure_future(a.chat(greedy(a, "Name a color.", 4)))
            first.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await first
            release.set()  # the first load finishes now, for nobody
            reply = await asyncio.wait_for(second, 600)
            return first.cancelled(), reply, len(a.manager.loaded())
        finally:
            release.set()
            await a.close()

    cancelled, reply, loaded = asyncio.run(body())
    assert cancelled and reply.text
    assert len(loads) == 2  # the abandoned load and the second request's own
    assert loaded == 1
    # The autouse fixture fails the test if the abandoned engine's thread is left running.


@pytest.mark.timeout(900)
def test_two_hundred_requests_in_a_row_leak_no_fds_threads_or_much_memory(settings):
    result = asyncio.run(load.soak(_small(settings), n=200))
    _ok(result)
    print("soak:", result.notes)


def test_an_unwritable_data_dir_warns_once_and_chat_still_works(settings, tmp_path):
    result = asyncio.run(storage.unwritable_data_dir(tmp_path, _small(settings)))
    _ok(result)


def test_kill9_of_a_conversation_writer_loses_no_committed_message(tmp_path):
    result = storage.kill9_conversations(tmp_path, rounds=3)
    _ok(result)
    assert result.notes["committed_messages_checked"] > 0


@pytest.mark.timeout(900)
def test_the_serve_leak_check_runs_jarvis_serve_and_samples_what_could_grow():
    """`make reliability`'s leak check, short: a real `jarvis serve`, every request answered (cache
    off), RSS, fds and threads sampled every 20; the long run judges the growth over 1,000."""
    from bench.reliability.serve_leak import serve_leak

    result = serve_leak(n=60, every=20, start=20, bound_mb=64)
    _ok(result)
    assert [s["after"] for s in result.notes["samples"]] == [20, 40, 60]
    assert result.notes["window"] == "20..60" and all(s["rss_mb"] > 0 for s in result.notes["samples"])
