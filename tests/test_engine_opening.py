"""Opening a model ahead of its engine (engine/opening.py), against the real bundled model: the
engine takes exactly the open it would make, refuses any other (which is freed), and `jarvis
serve` begins one only where the warm-up's model is known without a scan."""

from __future__ import annotations

import asyncio
import logging

import pytest

from jarvis.config import load_settings
from jarvis.engine import Engine, EngineConfig, opening
from jarvis.engine.early_open import EarlyOpen
from jarvis.engine.opening import OpenSpec
from jarvis.errors import ModelLoadError
from jarvis.http.serve import open_default_early
from jarvis.request import ChatRequest, Message
from jarvis.sampling import SamplingParams

CONFIG = EngineConfig(batch_size=2, context_length=256, n_threads=2)


@pytest.fixture
def opens(monkeypatch) -> list:
    """Every llama.cpp model load, counted (the real LlamaModel does the work)."""
    made = []

    class CountedModel(opening.LlamaModel):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(opening, "LlamaModel", CountedModel)
    return made


async def answer(engine: Engine) -> str:
    seq = engine.submit(ChatRequest(messages=(Message("user", "Name two fruits."),),
                                    sampling=SamplingParams(max_tokens=6, temperature=0)))
    return "".join([chunk.text async for chunk in engine.stream(seq)])


def test_an_engine_takes_the_open_begun_ahead_of_it_and_loads_nothing_itself(model_path, opens):
    spec, _ = OpenSpec.for_engine(model_path, CONFIG)
    early = EarlyOpen(model_path, CONFIG)
    engine = Engine("m", model_path, config=CONFIG)
    engine.load(early)
    try:
        assert len(opens) == 1 and engine._model is opens[0]
        assert asyncio.run(answer(engine))  # the taken context generates
        assert early.take(spec) is None  # handed over once
    finally:
        engine.close()


def test_an_open_of_other_settings_is_freed_and_the_engine_opens_its_own(model_path, opens):
    early = EarlyOpen(model_path, EngineConfig(batch_size=4, context_length=256, n_threads=2))
    engine = Engine("m", model_path, config=CONFIG)
    engine.load(early)
    try:
        assert len(opens) == 2 and engine._model is opens[1]
        assert opens[0]._ptr is None  # the other open's weights are freed, not left behind
        assert engine.n_ctx_seq == 256 and asyncio.run(answer(engine))
    finally:
        engine.close()


def test_an_open_that_failed_ahead_leaves_the_engine_to_report_it(tmp_path, opens):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)
    early = EarlyOpen(broken, CONFIG)
    engine = Engine("broken", broken, config=CONFIG)
    with pytest.raises(ModelLoadError, match="broken.gguf"):
        engine.load(early)
    assert opens == []  # llama.cpp never saw the file


def test_discard_frees_an_open_nobody_took(model_path, opens):
    early = EarlyOpen(model_path, CONFIG)
    early.discard()
    assert len(opens) == 1 and opens[0]._ptr is None
    assert early.take(early.spec) is None


def test_serve_opens_ahead_only_the_bundled_default(tmp_path, model_path, monkeypatch):
    """Known without a scan: the bundled model when no default is configured and the warm-up asks
    for the default. A configured default (a name the catalog must find) or no warm-up: none."""
    monkeypatch.setattr("jarvis.catalog.model_info.bundled_model_path", lambda: model_path)
    assert open_default_early(load_settings(environ={"JARVIS_GENERAL_DEFAULT_MODEL": "other"})) is None
    assert open_default_early(load_settings(environ={"JARVIS_MODELS_WARMUP": "[]"})) is None
    early = open_default_early(load_settings(environ={"JARVIS_ENGINE_CONTEXT_LENGTH": "256",
                                                      "JARVIS_ENGINE_BATCH_SIZE": "2"}))
    try:
        assert early is not None and early.spec.path == model_path
        assert early.spec.n_seq == 2 and early.spec.context_length == 256
    finally:
        early.discard()


@pytest.fixture
def python_log_lines(monkeypatch) -> list:
    """Every llama.cpp log line that reaches Python: a counting callback stands in for the route
    to the `jarvis.llama` logger (and is what logs_discarded() puts back), the real one after."""
    import ctypes

    import llama_cpp as ll

    from jarvis.engine import backend

    backend.ensure_backend()
    real_route, lines = backend._route_log, []
    counting = ll.llama_log_callback(lambda level, text, _user_data: lines.append(text))
    monkeypatch.setattr(backend, "_route_log", counting)
    ll.llama_log_set(counting, ctypes.c_void_p(0))
    yield lines
    ll.llama_log_set(real_route, ctypes.c_void_p(0))  # before `counting` can be collected


def test_an_open_ahead_sends_none_of_its_log_lines_through_python(model_path, python_log_lines):
    """Its ~2,300 lines would each wait for the GIL beside `jarvis serve`'s imports; a native
    callback drops them (backend.logs_discarded), and the Python route is back afterwards."""
    from jarvis.engine import backend

    spec, _ = OpenSpec.for_engine(model_path, CONFIG)
    early = EarlyOpen(model_path, CONFIG)
    opened = early.take(spec)
    try:
        assert opened is not None
        during = len(python_log_lines)
        if backend._discarding_callback() is not None:  # x86-64 and AArch64: every machine this runs on
            assert during == 0
        else:
            assert during > 1000
        again = opening.open_model(spec)  # the engine's own open: its lines reach Python (and its errors)
        again.close()
        assert len(python_log_lines) - during > 1000
    finally:
        opened.close()


def test_jarvis_v_keeps_the_lines_of_an_open_ahead(model_path, python_log_lines):
    llama_log = logging.getLogger("jarvis.llama")
    level = llama_log.level
    llama_log.setLevel(logging.INFO)  # what `jarvis -v` sets (through the root logger)
    try:
        spec, _ = OpenSpec.for_engine(model_path, CONFIG)
        EarlyOpen(model_path, CONFIG).take(spec).close()
    finally:
        llama_log.setLevel(level)
    assert len(python_log_lines) > 1000
