"""The bare decode loop (jarvis/bench/bare_decode.py) that step-profile times beside both servers:
driven as step-profile drives it (one line in, one answer out per load) on the bundled model."""

import subprocess
import sys

import llama_cpp as ll

from jarvis.bench.bare_decode import Sequence, prompt_tokens, run_load
from jarvis.bench.peer_bench import PROMPTS
from jarvis.bench.step_profile import Runner, round_order
from jarvis.catalog import read_gguf_info
from jarvis.engine.config import EngineConfig
from jarvis.engine.opening import OpenSpec, open_model


def test_each_line_runs_one_load_of_continuous_batching_and_later_loads_reuse_the_saved_prompts():
    # 3 prompts, 2 at a time, 8 tokens each (none of the bench's prompts ends its reply that soon):
    # prompts 1 and 2 share 8 decodes (the first of them their prefill), then prompt 3 takes 8 more.
    proc = subprocess.run([sys.executable, "-m", "jarvis.bench.bare_decode", "--streams", "2", "--max-tokens", "8",
                           "--prompts", "3", "--threads", "1"], input="go\ngo\n", capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # the second load restores each prompt's saved cells and decodes only its last token again:
    # the same number of decodes, so its decodes compare with the servers', whose caches do the same
    assert proc.stdout.splitlines() == ["tokens 24 decodes 16", "tokens 24 decodes 16"]


def test_four_streams_decode_as_one_ubatch_per_step_so_llama_cpp_reuses_each_steps_graph(model_path):
    # With one KV stream per sequence llama.cpp splits a step into several ubatches unless its
    # sequences come in increasing id order; a split step's graph differs from the last one, so
    # the count of reused graphs says whether every step was one ubatch. 4 prompts, 16 tokens
    # each: the first step prefills, the second builds the one-token graph, the 14 after reuse it.
    spec, _ = OpenSpec.for_engine(model_path, EngineConfig(n_threads=1, gpu_layers=0))
    opened = open_model(spec)
    try:
        template = read_gguf_info(model_path, "bundled", "bundled").chat_template
        prompts = prompt_tokens(opened, PROMPTS[:4], template)
        before = ll.llama_perf_context(opened.ctx.ptr).n_reused
        assert run_load(opened, prompts, 4, 16) == (64, 16)
        assert ll.llama_perf_context(opened.ctx.ptr).n_reused - before == 14
    finally:
        opened.close()


def test_a_sequence_decodes_each_token_at_the_position_after_the_last():
    s = Sequence(seq_id=0, which=0, prompt=[1, 2, 3], generated=[7])
    assert s.pos == 3  # the first generated token follows the prompt's positions 0-2
    s.generated.append(8)
    assert s.pos == 4


def test_a_round_runs_every_server_in_each_kind_then_the_bare_loop_once():
    def load(_kind):
        return 0

    runners = {"jarvis": Runner(1, load), "llama-server": Runner(2, load), "bare": Runner(3, load, ("loop",))}
    assert round_order(runners, ["streamed", "whole"]) == [
        ("jarvis", "streamed"), ("llama-server", "streamed"), ("jarvis", "whole"), ("llama-server", "whole"),
        ("bare", "loop")]
    assert round_order(runners, ["streamed"]) == [("jarvis", "streamed"), ("llama-server", "streamed"),
                                                  ("bare", "loop")]
