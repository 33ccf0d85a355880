"""Per-model benchmarks on "two models" (the bundled GGUF copied under two names): saved with
what produced them, and shown side by side by `jarvis bench` and the monitor's Benchmarks page."""

from __future__ import annotations

import json

from tests.support.process import run_jarvis
from tests.ui_support import drive, make_desktop, qloop, ui_env, ui_settings  # noqa: F401 (fixtures)

from jarvis.config import load_settings

FIGURES = ["load_ms", "memory_bytes", "prompt_tokens_per_s", "ttft_ms", "decode_tokens_per_s_1",
           "decode_tokens_per_s_4"]


def _check(result: dict, model: str) -> None:
    assert result["model"] == model and result["quantization"] == "Q4_1"
    assert all(result[k] > 0 for k in FIGURES), {k: result[k] for k in FIGURES}
    assert result["prompt_tokens"] > 100  # the long prompt really was long
    assert result["hardware"]["cores"] >= 1 and result["hardware"]["cpu"]
    assert result["llama_cpp"].startswith("llama-cpp-python 0.3.")
    assert result["settings"]["engine"]["batch_size"] >= 1


def test_cli_saves_and_compares_two_models(env, tmp_path, model_copy):
    folder = tmp_path / "models"
    model_copy("alpha", folder)
    model_copy("beta", folder)
    env = {**env, "JARVIS_GENERAL_MODELS_DIRS": str(folder)}
    for name in ("alpha", "beta"):
        r = run_jarvis(["bench", "--model", name, "--save"], env, timeout=600)
        assert r.returncode == 0, r.stderr
    saved = [json.loads(line) for line in (tmp_path / "data" / "benchmarks.jsonl").read_text().splitlines()]
    assert [s["model"] for s in saved] == ["alpha", "beta"]
    for s in saved:
        _check(s, s["model"])
    table = r.stdout.splitlines()
    assert table[0].startswith("Model") and [line.split()[0] for line in table[1:3]] == ["alpha", "beta"]
    assert run_jarvis(["bench", "--model", "no-such-model"], env).returncode == 1


def test_the_monitor_benchmarks_each_model_and_shows_the_table(make_desktop, drive, ui_env, tmp_path, model_copy):
    folder = tmp_path / "models"
    model_copy("alpha", folder)
    model_copy("beta", folder)
    d = make_desktop(load_settings(environ={**ui_env, "JARVIS_GENERAL_MODELS_DIRS": str(folder)}))
    d.window.tabs.setCurrentWidget(d.monitor)
    panel = d.monitor.benchmarks
    d.monitor.details.setCurrentWidget(panel)
    drive.wait(lambda: {"alpha", "beta"} <= {panel.model.itemText(i) for i in range(panel.model.count())})
    for name in ("alpha", "beta"):
        panel.model.setCurrentText(name)
        panel.run_button.click()
        drive.wait(lambda: panel.running is not None and panel.running.done(), timeout_s=300)
        assert panel.running.exception() is None
    assert [r["model"] for r in panel.results] == ["alpha", "beta"]
    for r in panel.results:
        _check(r, r["model"])
    assert panel.table.rowCount() == 2
    shown = sorted(panel.table.item(row, 0).text() for row in range(2))
    assert shown == ["alpha", "beta"]
    assert d.runtime.settings.benchmarks_path.exists()  # saved: `jarvis bench` shows them too
