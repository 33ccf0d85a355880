"""`jarvis pull` / `jarvis rm` against a loopback hub (tests/hub_server.py) serving the bundled GGUF,
pointed at by HF_ENDPOINT: real huggingface_hub listing and HEAD, real HTTP bytes, real checks."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from jarvis.cli import main
from jarvis.config import load_settings
from jarvis.downloads.errors import DownloadError, UnsafeName
from jarvis.downloads.hub import RemoteFile, choose
from jarvis.downloads.names import check_repo_file
from tests.hub_server import COMMIT, FILE, REPO, gguf_file, hub  # noqa: F401 (fixtures)


@pytest.fixture
def drive_assistant(settings):
    """Answer one short greedy prompt with the named model, through the Assistant (real llama.cpp)."""
    from jarvis.assistant import Assistant

    async def answer(model: str) -> str:
        a = Assistant(settings)
        try:
            await a.catalog.ready()  # the first scan (Assistant() no longer scans)
            assert model in [m.name for m in a.catalog.snapshot().usable()]
            request = a.request("Say hello.", model=model, temperature=0, max_tokens=8, use_cache=False)
            return (await a.chat(request)).text
        finally:
            await a.close()
    return lambda model: asyncio.run(answer(model))


def leftovers(settings) -> list[str]:
    """Partial files left beside the models folder (lock files stay on purpose: deleting one is a race)."""
    folder = settings.user_models_path.parent / "downloads"
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.endswith(".lock"))


def partial_files(settings) -> list[Path]:
    folder = settings.user_models_path.parent / "downloads"
    return sorted(folder.glob("*.part"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pull_installs_a_verified_model_that_answers(hub, gguf_file, settings, capsys, drive_assistant):
    assert main(["pull", REPO]) == 0
    target = settings.user_models_path / FILE
    assert sha256(target) == gguf_file.sha256
    assert leftovers(settings) == []
    assert [(m, r) for m, _, r in hub.log if m != "GET" or _.endswith(".gguf")][-2:] == [("HEAD", None), ("GET", None)]
    assert "installed" in capsys.readouterr().out
    assert drive_assistant("tiny-chat-Q4_1")  # in the catalog and answers
    assert main(["pull", REPO, FILE]) == 0    # a second pull finds it there and fetches nothing
    assert len(hub.gets()) == 1


def test_a_dropped_connection_resumes_byte_identical(hub, gguf_file, settings, capsys):
    half = len(gguf_file.data) // 2 + 12345
    hub.drop_at = half
    assert main(["pull", REPO, FILE, "--retries", "0"]) == 1
    assert "Run the same pull again to resume" in capsys.readouterr().err
    assert not (settings.user_models_path / FILE).exists()
    assert [p.stat().st_size for p in partial_files(settings)] == [half]

    assert main(["pull", REPO, "--quant", "q4_1"]) == 0
    assert [r for _, _, r in hub.gets()] == [None, f"bytes={half}-"]
    assert sha256(settings.user_models_path / FILE) == gguf_file.sha256
    assert leftovers(settings) == []


def test_corrupted_bytes_are_refused_and_nothing_is_left(hub, settings, capsys):
    hub.corrupt = True
    assert main(["pull", REPO]) == 1
    err = capsys.readouterr().err
    assert "is damaged: its SHA-256" in err and "removed" in err
    assert not settings.user_models_path.exists() or list(settings.user_models_path.iterdir()) == []
    assert leftovers(settings) == []


def test_not_enough_disk_is_refused_before_a_byte(hub, monkeypatch, capsys):
    monkeypatch.setenv("JARVIS_DOWNLOADS_KEEP_FREE_MB", str(2**40))  # more than any disk has
    assert main(["pull", REPO]) == 1
    assert "Not enough disk space" in capsys.readouterr().err
    assert hub.gets() == []


def test_hostile_file_names_from_the_hub_are_refused(hub, settings, capsys):
    hub.extra_siblings[REPO] = ["../../evil.gguf", "/etc/evil.gguf", "a/../../evil.gguf", "..\\evil.gguf"]
    assert main(["pull", REPO, "../../evil.gguf"]) == 2
    err = capsys.readouterr().err
    assert "lists the file '../../evil.gguf'" in err and "climbs out of the repository" in err and "refused" in err
    assert main(["pull", REPO]) == 0  # the hostile names are left out; the one real file is pulled
    assert "ignored the hub file name 'a/../../evil.gguf'" in capsys.readouterr().err
    assert [p for _, p, _ in hub.gets()] == [f"/{REPO}/resolve/{COMMIT}/{FILE}"]
    assert not (settings.data_path.parent / "evil.gguf").exists()


def test_an_unreachable_hub_is_one_line(hub, monkeypatch, capsys):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    assert main(["pull", REPO]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("jarvis: Cannot reach the model hub at http://127.0.0.1:9") and "\n" not in err


def test_hf_token_opens_a_gated_repo(hub, monkeypatch, settings, capsys):
    hub.token = "hf_test_token"
    assert main(["pull", REPO]) == 1
    assert "is gated" in capsys.readouterr().err and hub.gets() == []
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    assert main(["pull", REPO]) == 0
    assert (settings.user_models_path / FILE).is_file()


@pytest.mark.parametrize("name", ["../../x.gguf", "/etc/x.gguf", "a/../../x.gguf", "a\\x.gguf", "", "a//x.gguf",
                                  "./x.gguf", "x\x00.gguf"])
def test_repo_file_names_that_are_paths_are_refused(name):
    with pytest.raises(UnsafeName):
        check_repo_file(name)


def remote(path: str) -> RemoteFile:
    return RemoteFile(path, check_repo_file(path), 1, None)


def test_choose_by_file_quant_or_the_only_one():
    files = [remote(f"m-{q}.gguf") for q in ("Q4_K_M", "Q8_0")]
    assert choose("o/r", files, None, "q8_0").name == "m-Q8_0.gguf"
    assert choose("o/r", files, "m-Q4_K_M.gguf", None).name == "m-Q4_K_M.gguf"
    with pytest.raises(DownloadError, match="several GGUF files; name one"):
        choose("o/r", files, None, None)
    with pytest.raises(DownloadError, match="no file matches --quant Q2_K"):
        choose("o/r", files, None, "Q2_K")


@pytest.mark.parametrize("quant, files, picked", [
    ("Q6_K", ["m-Q6_K.gguf", "m-Q6_K_L.gguf"], "m-Q6_K.gguf"),           # not the _L variant as well
    ("Q4_0", ["m-Q4_0.gguf", "m-Q4_0_4_4.gguf"], "m-Q4_0.gguf"),
    ("q4-k-m", ["tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf", "tinyllama-1.1b-chat-v1.0.Q4_K_S.gguf"],
     "tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf"),
    ("IQ4_XS", ["Q4_K_M/m-Q4_K_M.gguf", "IQ4_XS/m-IQ4_XS.gguf"], "IQ4_XS/m-IQ4_XS.gguf"),
])
def test_quant_matches_the_exact_token(quant, files, picked):
    assert choose("o/r", [remote(f) for f in files], None, quant).path == picked


def test_quant_that_is_only_part_of_a_token_matches_nothing():
    with pytest.raises(DownloadError, match="no file matches --quant Q4_0"):
        choose("o/r", [remote("m-Q4_0_4_4.gguf"), remote("m-Q8_0.gguf")], None, "Q4_0")


def test_a_name_in_two_folders_is_asked_not_guessed():
    from jarvis.downloads.hub import Ambiguous

    files = [remote("a/x.gguf"), remote("b/x.gguf")]
    with pytest.raises(Ambiguous) as caught:
        choose("o/r", files, "x.gguf", None)
    assert [f.path for f in caught.value.choices] == ["a/x.gguf", "b/x.gguf"]
    assert "a/x.gguf" in str(caught.value) and "b/x.gguf" in str(caught.value)
    assert choose("o/r", files, "b/x.gguf", None).name == "b--x.gguf"


def test_rm_deletes_only_plain_names_in_the_models_folder(env, monkeypatch, tmp_path, capsys):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    models = settings.user_models_path
    models.mkdir(parents=True)
    outside = tmp_path / "precious.gguf"
    outside.write_bytes(b"keep me")
    (models / "link.gguf").symlink_to(outside)
    (models / "mine.gguf").write_bytes(b"x")
    for name in ["../precious", str(outside), "a/b", "link", "..", ".hidden"]:
        assert main(["rm", name, "--yes"]) == 2, name
        assert "Refusing" in capsys.readouterr().err
    assert main(["rm", "SmolLM2-135M-Instruct.Q4_1", "--yes"]) == 1  # the bundled model is not the user's
    assert "JARVIS deletes only files there" in capsys.readouterr().err
    assert main(["rm", "mine", "--yes"]) == 0
    assert not (models / "mine.gguf").exists() and outside.read_bytes() == b"keep me"


def test_the_curated_list_is_well_formed_and_says_what_fits(capsys):
    from dataclasses import replace

    from jarvis.downloads.curated import Machine, curated_models, fit
    from jarvis.downloads.hub import check_repo

    models = curated_models()
    assert len(models) >= 12 and {m.kind for m in models} == {"instruct", "embedding"}
    for m in models:
        check_repo(m.repo)
        assert check_repo_file(m.file).endswith(".gguf")
        assert m.sha256 is None or len(m.sha256) == 64  # null: the hub's LFS SHA-256 is used (always)
        assert m.memory_gb > 0 and m.context_length > 0 and m.licence
    three = replace(models[0], memory_gb=3.0)
    assert fit(three, Machine(ram_bytes=int(2e9))) == (False, "needs 1 GB more")
    assert fit(three, Machine(ram_bytes=int(2e9), vram_bytes=int(8e9))) == (True, "fits (GPU)")
    assert fit(three, Machine(ram_bytes=int(4e9))) == (True, "fits")
    assert main(["models", "--available"]) == 0
    out = capsys.readouterr().out
    assert "THIS COMPUTER" in out and all(m.file in out for m in models)


CURATED_SMOLLM = ("bartowski/SmolLM2-135M-Instruct-GGUF", "SmolLM2-135M-Instruct-Q4_K_M.gguf")


def test_the_curated_pins_are_filled_where_known():
    from jarvis.downloads.curated import curated_models

    sizes = {(m.repo, m.file): m.size_bytes for m in curated_models()}
    assert sizes[("Qwen/Qwen2.5-0.5B-Instruct-GGUF", "qwen2.5-0.5b-instruct-q4_k_m.gguf")] == 491_400_032
    assert sizes[("Qwen/Qwen2.5-1.5B-Instruct-GGUF", "qwen2.5-1.5b-instruct-q4_k_m.gguf")] == 1_117_320_736
    assert sizes[CURATED_SMOLLM] == 105_454_432
    assert sizes[("Qwen/Qwen3-Embedding-0.6B-GGUF", "Qwen3-Embedding-0.6B-Q8_0.gguf")] == 639_150_592


def test_a_curated_pin_refuses_another_file_before_a_byte(hub, gguf_file, settings, capsys):
    repo, file = CURATED_SMOLLM
    hub.repos[repo] = {file: gguf_file}  # the hub serves other bytes than the list pins (98 MB, not 105 MB)
    assert main(["pull", repo, file]) == 1
    err = capsys.readouterr().err
    assert "curated list" in err and "105,454,432" in err
    assert hub.gets() == [] and not (settings.user_models_path / file).exists()


def test_curated_memory_is_weights_plus_a_4k_f16_cache(model_path):
    """The fits figure comes from layer/head dims; checked against a real GGUF's header for the one we have."""
    import gguf

    from jarvis.downloads.curated import curated_models, kv_cache_bytes

    models = {m.file: m for m in curated_models()}
    phi3 = models["Phi-3-mini-4k-instruct-q4.gguf"]
    kv = 2 * 32 * 4096 * 32 * 96 * 2  # K and V, 32 layers, 4096 tokens, 32 KV heads x 96 dims, f16
    assert kv_cache_bytes(phi3, 4096) == kv
    assert phi3.memory_gb * 1e9 >= phi3.approx_size_mb * 1e6 + kv  # was 3.8 GB: less than that sum
    fields = gguf.GGUFReader(model_path).fields  # the bundled SmolLM2-135M: same dims as the curated Q4_K_M
    value = lambda key: int(fields[key].contents())  # noqa: E731
    smol = models[CURATED_SMOLLM[1]]
    assert (smol.heads, smol.layers, smol.kv_heads, smol.head_dim) == (
        value("llama.attention.head_count"), value("llama.block_count"), value("llama.attention.head_count_kv"),
        value("llama.embedding_length") // value("llama.attention.head_count"))
    for m in models.values():
        assert m.memory_gb * 1e9 > (m.size_bytes or m.approx_size_mb * 1e6) + kv_cache_bytes(m, 4096)
