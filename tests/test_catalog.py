"""The catalog reads GGUF headers without loading weights; broken files are listed, not fatal."""

import os

import pytest

from jarvis.catalog import Catalog
from jarvis.errors import ModelLoadError, ModelNotFound


def test_bundled_model_metadata(model_path):
    (info,) = [m for m in Catalog([]).rescan().models if m.source == "bundled"]
    assert info.ok and info.path == model_path
    assert info.architecture == "llama"
    assert info.context_length == 8192
    assert info.quantization == "Q4_1"
    assert info.size_label == "135M" and 100e6 < info.parameters < 200e6
    assert info.has_chat_template and "im_start" in info.chat_template
    assert info.size_bytes == os.path.getsize(model_path)


def test_truncated_and_random_files_are_unreadable_not_fatal(tmp_path, model_path, model_copy):
    models = tmp_path / "models"
    model_copy("good", models)
    data = model_path.read_bytes()
    (models / "truncated.gguf").write_bytes(data[: len(data) // 2])
    (models / "random.gguf").write_bytes(os.urandom(4096))
    (models / "empty.gguf").write_bytes(b"")
    by_name = {m.name: m for m in Catalog([models], include_bundled=False).rescan().models}
    assert by_name["good"].ok
    assert "truncated" in by_name["truncated"].error
    assert "not a GGUF file" in by_name["random"].error
    assert "too small" in by_name["empty"].error
    with pytest.raises(ModelLoadError) as e:
        Catalog([models], include_bundled=False).rescan().get("truncated")
    assert "truncated.gguf" in str(e.value)


def test_unknown_model_lists_the_available_ones(tmp_path, model_copy):
    model_copy("alpha")
    with pytest.raises(ModelNotFound) as e:
        Catalog([tmp_path / "models"]).rescan().get("nope")
    assert "alpha" in str(e.value) and "SmolLM2-135M-Instruct.Q4_1" in str(e.value)


def test_names_never_become_paths(tmp_path, model_copy):
    model_copy("alpha")
    with pytest.raises(ModelNotFound):
        Catalog([tmp_path / "models"]).rescan().get("../models/alpha")
