"""Every benchmark suite that ships in the package, by the name `jarvis bench --suite NAME` takes.

Each suite is a module whose `main(argv) -> int` runs it; `jarvis bench --suite NAME -- OPTIONS`
hands it more options (`python -m jarvis.bench.<module> -h` lists them). Two more are reached by
their own options because they need an argument: `jarvis bench --peer URL | --peer-server PATH`
(jarvis/bench/peer_bench.py) and `jarvis bench --model NAME` (jarvis/bench/model_bench.py).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Suite:
    name: str
    module: str  # its main(argv) runs the suite
    about: str
    quick: tuple[str, ...]  # the options `--quick` stands for
    needs_bundled_model: bool = True  # measures on the bundled SmolLM2

    def argv(self, *, quick: bool, as_json: bool, extra: list[str]) -> list[str]:
        return [*(self.quick if quick else ()), *(["--json"] if as_json else []), *extra]

    def run(self, *, quick: bool = False, as_json: bool = False, extra: list[str] | None = None) -> int:
        return importlib.import_module(self.module).main(self.argv(quick=quick, as_json=as_json, extra=extra or []))


SUITES = (
    Suite("engine", "jarvis.bench.__main__", "the engine tables: batching, prefix reuse, loop lateness, cache "
          "hits (and remote, with llama-cpp-python[server])", ("--quick",)),
    Suite("remote", "jarvis.bench.remote_bench", "a remote model through JARVIS vs the openai client straight to "
          "its server", ("--rounds", "4", "--max-tokens", "48", "--latency-n", "10")),
    Suite("structured", "jarvis.bench.structured_bench", "what JSON-schema grammars and logprobs cost", ("--quick",)),
    Suite("openai", "jarvis.bench.openai_bench", "the OpenAI-compatible HTTP path vs the Assistant in-process",
          ("--rounds", "1", "--latency-n", "5")),
    Suite("catalog", "jarvis.bench.catalog_bench", "GET /health while the catalog reads new model files",
          ("--files", "60", "--idle", "2")),
    Suite("api-surfaces", "jarvis.bench.api_surfaces_bench", "Responses and Messages streaming vs chat "
          "completions on the same prompt (tok/s ratio, TTFT difference)", ("--rounds", "2", "--max-tokens", "32")),
    Suite("tools", "jarvis.bench.tools_bench", "the tool loop's own overhead per round (mcp-server-time) and the "
          "prompt tokens of MCP tool schemas", ("--turns", "5")),
    Suite("footprint", "jarvis.bench.footprint_bench", "start-up (launch to /health and to a first token) and RSS of "
          "`jarvis serve` vs llama-server (.bench/llama-server or --llama-server PATH) and llama_cpp.server",
          ("--rounds", "1", "--requests", "20")),
    Suite("serve-profile", "jarvis.bench.serve_profile", "jarvis serve under 4 streams: CPU per thread, the "
          "loop's CPU and wake-ups per token (--tree OLD --tree NEW alternates source trees)", ("--rounds", "1")),
    Suite("sched-profile", "jarvis.bench.sched_profile", "what the OS scheduler does to llama.cpp's threads "
          "under 4 streams (perf sched; --peer-server PATH adds llama-server): delays, sleeps, who preempted them",
          ("--rounds", "1")),
    Suite("step-profile", "jarvis.bench.step_profile", "JARVIS and llama-server (--peer-server PATH) under the "
          "same load, their llama.cpp decodes timed by the same uprobes: decodes per load, decode time, the gap "
          "between two", ("--rounds", "1")),
    Suite("prompt-cache", "jarvis.bench.prompt_cache_bench", "coming back to a conversation that lost its slot: "
          "follow-up TTFT with engine.prompt_cache_mb on vs off", ("--rounds", "1", "--history-words", "200")),
    Suite("http-stats", "jarvis.bench.http_stats_bench", "the stats endpoints' latency at a fixed rate; the 1 Hz "
          "sampler's cost", ("--duration", "2"), needs_bundled_model=False),
)
BY_NAME = {suite.name: suite for suite in SUITES}
