"""Engine benchmarks on the real bundled model. Every figure is a ratio against a baseline
measured in the same run: this machine is shared and noisy, absolute numbers drift.

- single request: JARVIS vs raw llama-cpp-python (`Llama.create_chat_completion`), same prompt
- 4 parallel and 10 requests: batch_size=4 vs the same engine with batch_size=1
- chat turn 2 after a long first turn: TTFT with prefix reuse vs cold
- event-loop lateness of a 10 ms ticker while 4 streams generate
- cache hit end-to-end latency vs a cold request
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time

from jarvis.assistant import Assistant
from jarvis.catalog import bundled_model_path
from jarvis.config import load_settings
from jarvis.engine.config import auto_threads
from jarvis.request import Message

STORY = "Write a long story about a lighthouse keeper and a storm."
PARALLEL_PROMPTS = ["Write a long story about a dragon.", "Describe the history of Rome in detail.",
                    "Explain how computers work, step by step.", "Write a long poem about the ocean."]


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return 0.0
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def make_assistant(batch_size: int = 4, context_length: int = 2048) -> Assistant:
    env = {"JARVIS_MODELS_WARMUP": "", "JARVIS_ENGINE_BATCH_SIZE": str(batch_size),
           "JARVIS_ENGINE_CONTEXT_LENGTH": str(context_length), "JARVIS_GPU_USE_GPU": "false",
           "JARVIS_GENERAL_DATA_DIR": os.environ.get("JARVIS_BENCH_DATA", "/tmp/jarvis-bench")}
    return Assistant(load_settings(environ=env))


def greedy(a: Assistant, text: str, max_tokens: int, **kw):
    return a.request(text, temperature=0, max_tokens=max_tokens, use_cache=False, **kw)


async def single_request(max_tokens: int, repeats: int) -> dict:
    a = make_assistant(batch_size=4)
    await a.manager.load(await a.resolve_default())  # waits for the first scan
    ours = []
    try:
        for _ in range(repeats):
            r = await a.chat(greedy(a, STORY, max_tokens))
            ours.append((r.record.completion_tokens / (r.record.total_ms / 1000), r.record))
    finally:
        await a.close()
    raw = await asyncio.to_thread(_raw_llama, max_tokens, repeats)
    ours_tps = statistics.median(t for t, _ in ours)
    raw_tps = statistics.median(raw)
    last = ours[-1][1]
    return {"single_tok_s": ours_tps, "raw_tok_s": raw_tps, "single_vs_raw_tok_s_ratio": ours_tps / raw_tps,
            "single_ttft_ms": last.ttft_ms, "single_latency_ms": last.total_ms,
            "single_completion_tokens": last.completion_tokens}


def _raw_llama(max_tokens: int, repeats: int) -> list[float]:
    from llama_cpp import Llama

    from jarvis.bench.llama_cpp_server import same_weight_buffers

    same_weight_buffers()  # the baseline loads its weights as the engine does (AMX builds crash otherwise)

    threads = auto_threads()
    llm = Llama(str(bundled_model_path()), n_ctx=2048, n_threads=threads, n_threads_batch=threads,
                verbose=False)
    rates = []
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = llm.create_chat_completion([{"role": "user", "content": STORY}], max_tokens=max_tokens,
                                             temperature=0)
            rates.append(out["usage"]["completion_tokens"] / (time.perf_counter() - t0))
    finally:
        llm.close()
    return rates


async def parallel(batch_size: int, n_requests: int, max_tokens: int) -> dict:
    from jarvis.telemetry import StepRecord

    a = make_assistant(batch_size=batch_size)
    await a.manager.load(await a.resolve_default())  # waits for the first scan
    # Decode throughput from the engine's own steps: the StepRecords (each sums the steps since the
    # one before) whose steps carried no prompt tokens.
    decode_steps: list[StepRecord] = []
    a.bus.subscribe(lambda r: decode_steps.append(r) if isinstance(r, StepRecord) and r.prefill_tokens == 0 else None)
    try:
        prompts = [PARALLEL_PROMPTS[i % 4] + f" (version {i})" for i in range(n_requests)]
        t0 = time.perf_counter()
        replies = await asyncio.gather(*(a.chat(greedy(a, p, max_tokens)) for p in prompts))
        wall = time.perf_counter() - t0
    finally:
        await a.close()
    latencies = [r.record.total_ms for r in replies]
    tokens = sum(r.record.completion_tokens for r in replies)
    decode_tok_s = sum(r.decode_tokens for r in decode_steps) / (sum(r.step_ms for r in decode_steps) / 1000)
    return {"tok_s": tokens / wall, "decode_tok_s": decode_tok_s, "p50_ms": percentile(latencies, 50),
            "p95_ms": percentile(latencies, 95), "p99_ms": percentile(latencies, 99), "tokens": tokens}


async def turn_two(history_turns: int) -> dict:
    history: list[Message] = []
    for i in range(history_turns):
        history += [Message("user", f"Tell me fact number {i} about the sea, in detail, please."),
                    Message("assistant", "The sea covers most of the planet and holds many living things. " * 3)]
    a = make_assistant(batch_size=4, context_length=4096)
    try:
        turn1 = await a.chat(greedy(a, "And one more fact?", 24, messages=history))
        history += [Message("user", "And one more fact?"), Message("assistant", turn1.text)]
        warm = await a.chat(greedy(a, "Thank you. Summarise.", 8, messages=history))
    finally:
        await a.close()
    b = make_assistant(batch_size=4, context_length=4096)
    try:
        await b.manager.load(await b.resolve_default())  # waits for the first scan
        cold = await b.chat(greedy(b, "Thank you. Summarise.", 8, messages=history))
    finally:
        await b.close()
    return {"turn2_history_tokens": cold.record.prompt_tokens, "turn2_cached_tokens": warm.record.cached_prompt_tokens,
            "turn2_ttft_ms": warm.record.ttft_ms, "cold_ttft_ms": cold.record.ttft_ms,
            "turn2_ttft_vs_cold_ratio": warm.record.ttft_ms / cold.record.ttft_ms}


async def loop_lag(max_tokens: int) -> dict:
    a = make_assistant(batch_size=4)
    await a.manager.load(await a.resolve_default())  # waits for the first scan
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker():
        while not done.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(0.010)
            lags.append((time.perf_counter() - t0 - 0.010) * 1000)

    try:
        tick = asyncio.ensure_future(ticker())
        await asyncio.gather(*(a.chat(greedy(a, p, max_tokens)) for p in PARALLEL_PROMPTS))
        done.set()
        await tick
    finally:
        await a.close()
    return {"loop_max_lag_ms": max(lags), "loop_p99_lag_ms": percentile(lags, 99), "loop_ticks": len(lags)}


async def cache_hit(repeats: int) -> dict:
    a = make_assistant(batch_size=4)
    await a.manager.load(await a.resolve_default())  # waits for the first scan
    try:
        cold = await a.chat(a.request("Name three rivers.", temperature=0, max_tokens=32))
        hits = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            r = await a.chat(a.request("Name three rivers.", temperature=0, max_tokens=32))
            hits.append((time.perf_counter() - t0) * 1000)
            assert r.record.cache_hit
    finally:
        await a.close()
    return {"cache_hit_p50_ms": percentile(hits, 50), "cache_hit_p99_ms": percentile(hits, 99),
            "cache_cold_ms": cold.record.total_ms, "cache_hit_vs_cold_ratio": percentile(hits, 99) / cold.record.total_ms}


def raw_batch_ceiling(steps: int = 48) -> dict:
    """What llama.cpp itself gives here: decode tok/s of one llama_decode over 4 sequences vs 1,
    straight on the low-level API with no engine around it. The engine's ratio is judged against it."""
    import llama_cpp as ll

    from jarvis.engine.handles import Batch, LlamaContext, LlamaModel

    model = LlamaModel(bundled_model_path())
    rates = {}
    try:
        for n_seq in (1, 4):
            ctx = LlamaContext(model, n_seq, 512, 256, auto_threads())
            batch = Batch(256)
            prompt = model.tokenize("Tell me a story.")
            for seq in range(n_seq):
                batch.clear()
                for i, tok in enumerate(prompt):
                    batch.add(tok, i, seq, i == len(prompt) - 1)
                ctx.decode(batch)
            t0 = time.perf_counter()
            for k in range(steps):
                batch.clear()
                for seq in range(n_seq):
                    batch.add(prompt[-1], len(prompt) + k, seq, True)
                ctx.decode(batch)
                for seq in range(n_seq):
                    ll.llama_get_logits_ith(ctx.ptr, seq)
            rates[n_seq] = steps * n_seq / (time.perf_counter() - t0)
            batch.close()
            ctx.close()
    finally:
        model.close()
    return {"raw_batch4_tok_s": rates[4], "raw_batch1_tok_s": rates[1], "raw_batch4_vs_1_ratio": rates[4] / rates[1]}


async def run_all(quick: bool) -> dict:
    tokens = 48 if quick else 128
    results: dict = {"quick": quick, "cpu_count": os.cpu_count()}
    results.update(await asyncio.to_thread(raw_batch_ceiling))
    results.update(await single_request(tokens, 1 if quick else 3))
    p4 = await parallel(4, 4, tokens)
    s4 = await parallel(1, 4, tokens)
    results.update({"parallel4_tok_s": p4["tok_s"], "serial4_tok_s": s4["tok_s"],
                    "parallel4_vs_serial_tok_s_ratio": p4["decode_tok_s"] / s4["decode_tok_s"],
                    "parallel4_vs_serial_wall_tok_s_ratio": p4["tok_s"] / s4["tok_s"],
                    "parallel4_ratio_vs_raw_ceiling": (p4["decode_tok_s"] / s4["decode_tok_s"])
                    / results["raw_batch4_vs_1_ratio"],
                    "parallel4": p4, "serial4": s4})
    if not quick:
        p10 = await parallel(4, 10, tokens)
        s10 = await parallel(1, 10, tokens)
        results.update({"parallel10": p10, "serial10": s10,
                        "parallel10_vs_serial_tok_s_ratio": p10["decode_tok_s"] / s10["decode_tok_s"],
                        "parallel10_vs_serial_wall_tok_s_ratio": p10["tok_s"] / s10["tok_s"]})
    results.update(await turn_two(8 if quick else 14))
    results.update(await loop_lag(tokens))
    results.update(await cache_hit(50 if quick else 200))
    return results
