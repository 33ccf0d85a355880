"""Hostile model files: a generated corpus (never committed binaries), header mutations, names
that look like paths. Short versions; `make reliability` runs the long ones."""

from __future__ import annotations

import asyncio
import os
import random
import shutil

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from bench.reliability import models
from bench.hostile import build_corpus
from jarvis.catalog import Catalog
from jarvis.engine import Engine, EngineConfig
from jarvis.errors import ModelLoadError
from jarvis.gguf_header import GGUFError, read_header


def test_hostile_corpus_is_refused_by_name_and_the_good_model_still_answers(tmp_path, settings):
    result = asyncio.run(models.hostile_models(tmp_path, settings, n_truncations=20))
    assert not result.problems, "\n".join(result.problems)
    assert result.handled == result.tried >= 60 and result.crashes == 0 and result.lost == 0


def test_every_hostile_file_is_listed_unreadable_with_a_reason(tmp_path, model_path):
    corpus, keep = build_corpus(tmp_path / "c", model_path, n_truncations=5, seed=1)
    try:
        listed = {m.path.name: m for m in Catalog(models_dirs=[tmp_path / "c"], include_bundled=False).rescan().models}
    finally:
        for s in keep:
            s.close()
    assert set(corpus) <= set(listed)
    for name in corpus:
        if name.startswith("header_ok_"):  # a valid header: only llama.cpp can tell (see the load test)
            continue
        assert not listed[name].ok and listed[name].error, name


def test_a_fifo_does_not_hang_the_catalog(tmp_path):
    """Defect fixed: open() of a named pipe blocks until a writer comes; the scan hung for good.
    No writer ever comes here, so the scan returning at all proves it never opened the pipe."""
    os.mkfifo(tmp_path / "pipe.gguf")
    [info] = Catalog(models_dirs=[tmp_path], include_bundled=False).rescan().models
    assert "not a regular file" in info.error


def test_misaligned_tensor_offsets_are_refused_before_llama_cpp(tmp_path):
    from bench.hostile import ARCH, gguf, tensor_info

    path = tmp_path / "m.gguf"
    path.write_bytes(gguf([ARCH], [tensor_info("t", [8], offset=3)]))
    with pytest.raises(GGUFError, match="not a multiple of general.alignment"):
        read_header(path)


@pytest.mark.parametrize("case", ["header_ok_not_a_model", "header_ok_unknown_arch", "truncated"])
def test_the_engine_refuses_files_that_changed_after_the_catalog_read_them(tmp_path, model_path, case):
    from bench.hostile import synthetic_cases, write_truncated

    path = tmp_path / f"{case}.gguf"
    if case == "truncated":
        write_truncated(model_path, path, model_path.stat().st_size // 2)
    else:
        path.write_bytes(synthetic_cases(random.Random(0))[case][0])
    engine = Engine(case, path, config=EngineConfig(context_length=512))
    with pytest.raises(ModelLoadError) as err:
        engine.load()
    assert str(path) in str(err.value)
    engine.close()


@pytest.fixture(scope="module")
def mutant(tmp_path_factory, model_path):
    path = tmp_path_factory.mktemp("mutant") / "mutant.gguf"
    shutil.copyfile(model_path, path)
    head = path.read_bytes()[:64 * 1024]
    return path, head


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 64 * 1024 - 1), st.integers(0, 255)), min_size=1, max_size=64))
def test_mutated_headers_parse_or_raise_ggufer_and_never_hang(mutant, edits):
    path, head = mutant
    data = bytearray(head)
    for where, value in edits:
        data[where] = value
    with open(path, "r+b") as f:
        f.write(data)
    # Parses or refuses: any other exception fails the example; a hang ends at the test's timeout.
    try:
        read_header(path)
    except GGUFError:
        pass


def test_header_mutations_short_run(tmp_path):
    result = models.header_mutations(tmp_path, 30, seed=3)
    assert not result.problems and result.handled == 30


def test_a_repeated_vocabulary_token_is_refused_instead_of_aborting_llama_cpp(tmp_path, model_path):
    """Defect found by the mutation run: one flipped byte in a token string (two tokens equal)
    passed the header check, and llama.cpp's GGML_ASSERT in llama-vocab.cpp then aborted the
    whole process (SIGABRT) on load. The header check before a load now refuses a repeated token.
    The catalog's listing walks past the token strings unread (most of a header's parse time), so
    the file is listed, and refused with the reason when it is loaded."""
    import re

    path = tmp_path / "dup.gguf"
    shutil.copyfile(model_path, path)
    head = bytearray(path.read_bytes()[:2 * 2**20])
    one = b"\x01" + b"\0" * 7
    m = re.search(re.escape(one) + b"[0-9]" + re.escape(one) + b"[0-9]", bytes(head))
    assert m is not None
    head[m.end() - 1] = head[m.start() + 8]  # the second single-digit token becomes the first
    with open(path, "r+b") as f:
        f.write(head)
    with pytest.raises(GGUFError, match="repeats token"):
        read_header(path)
    [info] = Catalog(models_dirs=[tmp_path], include_bundled=False).rescan().models
    assert info.ok and read_header(path, check_vocab=False).architecture == "llama"
    engine = Engine("dup", path, config=EngineConfig(context_length=512))
    with pytest.raises(ModelLoadError, match="repeats token"):
        engine.load()
    engine.close()


def test_per_token_arrays_must_match_the_vocabulary(tmp_path):
    import struct

    from bench.hostile import ARCH, ONE_TENSOR, STRING, gguf, _s

    tokens = _s("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, STRING, 2) + _s("a") + _s("b")
    scores = _s("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, 1) + struct.pack("<f", 0.0)
    path = tmp_path / "short-scores.gguf"
    path.write_bytes(gguf([ARCH, tokens, scores], ONE_TENSOR))
    with pytest.raises(GGUFError, match="has 1 entries but the vocabulary has 2"):
        read_header(path)


@pytest.mark.timeout(600)
def test_mutants_that_pass_the_header_check_never_kill_the_process(tmp_path):
    result = models.mutants_through_llama_cpp(tmp_path, 4, seed=1)
    assert not result.problems, result.problems
    assert result.crashes == 0 and result.handled == result.tried == 4
