"""The `jarvis` command, run as a user would: a subprocess against the real bundled model."""

from tests.support.process import run_jarvis


def test_ask_answers_and_prints_stats(env):
    r = run_jarvis(["ask", "What is the capital of France?", "--max-tokens", "24", "--temperature", "0", "--stats"], env)
    assert r.returncode == 0, r.stderr
    assert "Paris" in r.stdout
    assert "TTFT" in r.stderr and "tok/s" in r.stderr


def test_ask_with_seed_and_temperature_zero_is_reproducible(env):
    args = ["ask", "Name three colours.", "--max-tokens", "24", "--temperature", "0", "--seed", "7"]
    first, second = run_jarvis(args, env), run_jarvis(args, env)
    assert first.returncode == 0 and first.stdout.strip()
    assert first.stdout == second.stdout


def test_empty_prompt_exits_2(env):
    r = run_jarvis(["ask", "   "], env, input="")
    assert r.returncode == 2 and "empty" in r.stderr


def test_prompt_longer_than_context_exits_2_with_a_clear_message(env):
    env = {**env, "JARVIS_ENGINE_CONTEXT_LENGTH": "256", "JARVIS_ENGINE_TRUNCATE": "false"}
    r = run_jarvis(["ask", "word " * 400, "--max-tokens", "8"], env)
    assert r.returncode == 2
    assert "context holds 256" in r.stderr and "Traceback" not in r.stderr


def test_unknown_model_lists_available(env):
    r = run_jarvis(["ask", "hi", "--model", "nope"], env)
    assert r.returncode == 1 and "SmolLM2-135M-Instruct.Q4_1" in r.stderr and "Traceback" not in r.stderr


def test_models_lists_a_corrupt_file_as_unreadable(env, tmp_path):
    folder = tmp_path / "extra"
    folder.mkdir()
    (folder / "broken.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 40)
    r = run_jarvis(["models"], {**env, "JARVIS_GENERAL_MODELS_DIRS": str(folder)})
    assert r.returncode == 0, r.stderr
    assert "SmolLM2-135M-Instruct.Q4_1" in r.stdout
    broken = [line for line in r.stdout.splitlines() if line.startswith("broken")]
    assert broken and "UNREADABLE" in broken[0]


def test_loading_a_corrupt_model_is_a_clear_error(env, tmp_path, model_path):
    folder = tmp_path / "extra"
    folder.mkdir()
    (folder / "half.gguf").write_bytes(model_path.read_bytes()[:5_000_000])
    r = run_jarvis(["ask", "hi", "--model", "half"], {**env, "JARVIS_GENERAL_MODELS_DIRS": str(folder)})
    assert r.returncode == 1 and "half.gguf" in r.stderr and "truncated" in r.stderr
    assert "Traceback" not in r.stderr


def test_invalid_settings_file_is_reported_with_its_line(env, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[engine\n")
    r = run_jarvis(["--config", str(bad), "models"], env)
    assert r.returncode == 2 and "line 1" in r.stderr


def test_terminal_chat_second_turn_carries_the_first(env):
    """The second request holds the whole first turn: its prompt is longer than turn 1's prompt and
    answer together, and it reuses turn 1's KV cache (the prefix is identical)."""
    import re

    script = "My name is Ada.\nWhat is my name?\n/exit\n"
    r = run_jarvis(["chat", "--stats"], {**env, "JARVIS_GENERATION_TEMPERATURE": "0",
                                         "JARVIS_GENERATION_MAX_TOKENS": "40"}, input=script)
    assert r.returncode == 0, r.stderr
    line = r"(\d+) tokens · [\d.]+ tok/s · TTFT \d+ ms · (\d+) prompt \((\d+) reused\)"  # jarvis.stats_line's
    turns = [tuple(map(int, m)) for m in re.findall(line, r.stderr)]
    assert len(turns) == 2, r.stderr
    (c1, p1, _), (_, p2, reused2) = turns
    assert p2 > p1 + c1
    assert reused2 >= p1
    assert r.stdout.count("> ") == 3  # two answers, then the prompt that read /exit


def test_doctor_reports_versions_gpu_and_models(env):
    r = run_jarvis(["doctor"], env)
    assert r.returncode == 0, r.stderr
    assert "llama-cpp-python" in r.stdout and "0.3.36" in r.stdout
    assert "GPU offload" in r.stdout and "NVIDIA GPU" in r.stdout
    assert "SmolLM2-135M-Instruct.Q4_1" in r.stdout
    from jarvis.engine.cores import compute_core_count

    assert f"CPU threads      {compute_core_count()} for llama.cpp (engine.n_threads = 0: one per physical core" in r.stdout
    r = run_jarvis(["doctor"], {**env, "JARVIS_ENGINE_N_THREADS": "3"})
    assert "CPU threads      3 for llama.cpp (engine.n_threads)" in r.stdout
