"""`jarvis bench` reaches every benchmark that ships in the package (the speed figures themselves
live in the benches, never in a test)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from tests.support.process import run_jarvis

from jarvis.bench.suites import SUITES
from jarvis.cli import build_parser

BENCH = Path(__file__).resolve().parent.parent / "jarvis" / "bench"
BY_OWN_OPTION = {"jarvis.bench.peer_bench"}  # --peer URL / --peer-server PATH; model_bench: --model NAME
BY_ANOTHER_BENCH = {"jarvis.bench.bare_decode"}  # step-profile --bare starts it and feeds it its loads


def runnable_modules() -> set[str]:
    """Every module of jarvis/bench with a main(): a suite someone can run."""
    found = set()
    for path in BENCH.glob("*.py"):
        tree = ast.parse(path.read_text())
        if any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body):
            found.add(f"jarvis.bench.{path.stem}")
    return found


def test_every_bench_module_is_a_suite_of_jarvis_bench():
    assert runnable_modules() == {s.module for s in SUITES} | BY_OWN_OPTION | BY_ANOTHER_BENCH
    assert '"jarvis.bench.bare_decode"' in (BENCH / "step_profile.py").read_text()  # how --bare reaches it


def test_every_suite_is_a_choice_of_the_command():
    for suite in SUITES:
        args = build_parser().parse_args(["bench", "--suite", suite.name, "--quick", "--", "--extra", "1"])
        assert (args.suite, args.quick, args.peer_args) == (suite.name, True, ["--extra", "1"])
    assert build_parser().parse_args(["bench"]).suite == "engine"  # `jarvis bench` alone: the engine tables


def test_a_suite_runs_through_the_command_with_its_own_options(env):
    """The stats-endpoint suite end to end (it needs no model): options after `--` reach it, --json
    makes its output one JSON object."""
    r = run_jarvis(["bench", "--suite", "http-stats", "--quick", "--json", "--", "--rate", "20", "--duration", "0.5"],
                   env, timeout=120)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["bench"] == "http_stats" and result["rate"] == 20 and result["duration_s"] == 0.5
    assert set(result["http"]) == {"/health", "/api/performance/stats", "/metrics"}
    assert all(f["requests"] == 10 and f["errors"] == 0 for f in result["http"].values())  # 20/s for 0.5 s each
