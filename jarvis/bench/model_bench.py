"""Per-model benchmarks: which model is fastest on this computer (`jarvis bench --model NAME --save`,
and the monitor's "Benchmark" button). A fixed, short suite on the model as the settings load it:

- load time and memory (the load this run made, or the model's current load when it was loaded)
- prompt processing tok/s: a ~300-token prompt, one token generated (prompt tokens / prefill time)
- TTFT: the median of 3 short prompts
- decode tok/s with 1 request, and summed over 4 concurrent requests

Each result is saved with what produced it: the hardware, the llama.cpp build, the model's
quantisation and the engine/GPU settings, as one JSON line in <data_dir>/benchmarks.jsonl.
Greedy requests that skip the response cache: every figure is measured generation.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import time

SUITE_VERSION = 1
LONG_PROMPT = ("Summarise the following notes in one sentence. " +
               " ".join(f"Note {i}: the meeting about the garden project moved to room {i % 7}." for i in range(24)))


def hardware() -> dict:
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_bytes": psutil.virtual_memory().total,
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version()}


def llama_build() -> str:
    import llama_cpp

    from jarvis.engine import backend
    offload = "GPU offload" if backend.supports_gpu_offload() else "CPU only"
    return f"llama-cpp-python {llama_cpp.__version__} ({offload})"


async def run_model_bench(assistant, name: str, *, gpus: list[str] | None = None,
                          progress=None) -> dict:
    """Run the suite on model `name` through `assistant` (its manager loads the model if needed)."""
    say = progress or (lambda text: None)
    info = await assistant.catalog.lookup(name, None)
    manager = assistant.manager
    loaded_before = manager.engine_of(info.name) is not None
    say(f"Loading {info.name}…")
    if not loaded_before:
        await manager.load(info.name)
    entry = next(m for m in manager.loaded() if m["name"] == info.name)

    def request(text: str, max_tokens: int):
        return assistant.request(text, model=info.name, temperature=0, max_tokens=max_tokens, use_cache=False)

    say("Prompt processing…")
    prompt = (await assistant.chat(request(LONG_PROMPT, 1))).record
    say("Time to first token…")
    ttfts = [(await assistant.chat(request(f"Name a colour, please ({i}).", 1))).record.ttft_ms for i in range(3)]
    say("Decoding, 1 request…")
    one = (await assistant.chat(request("Count from 1 to 100, separated by commas.", 64))).record
    say("Decoding, 4 requests at once…")
    four = await asyncio.gather(*(assistant.chat(request(f"Count from {i} to {i + 100}, separated by commas.", 64))
                                  for i in range(4)))
    settings = assistant.settings
    return {
        "suite": SUITE_VERSION,
        "timestamp": time.time(),
        "model": info.name,
        "quantization": info.quantization or "?",
        "parameters": info.parameters,
        "size_bytes": info.size_bytes,
        "load_ms": entry["load_ms"],
        "loaded_by_bench": not loaded_before,
        "memory_bytes": entry["memory_bytes"],
        "prompt_tokens_per_s": prompt.prompt_tokens / (prompt.prefill_ms / 1000) if prompt.prefill_ms > 0 else 0.0,
        "prompt_tokens": prompt.prompt_tokens,
        "ttft_ms": statistics.median(ttfts),
        "decode_tokens_per_s_1": one.decode_tokens_per_s,
        "decode_tokens_per_s_4": sum(r.record.decode_tokens_per_s for r in four),
        "hardware": {**hardware(), "gpus": gpus or []},
        "llama_cpp": llama_build(),
        "settings": {"engine": settings.engine.model_dump(), "gpu": settings.gpu.model_dump()},
    }


TABLE = [("Model", lambda r: r["model"]), ("Quant", lambda r: r["quantization"]),
         ("Load", lambda r: f"{r['load_ms']:.0f} ms"), ("Memory", lambda r: f"{r['memory_bytes'] / 2**20:.0f} MiB"),
         ("Prompt tok/s", lambda r: f"{r['prompt_tokens_per_s']:.0f}"), ("TTFT", lambda r: f"{r['ttft_ms']:.0f} ms"),
         ("Decode tok/s (1)", lambda r: f"{r['decode_tokens_per_s_1']:.1f}"),
         ("Decode tok/s (4)", lambda r: f"{r['decode_tokens_per_s_4']:.1f}"),
         ("When", lambda r: time.strftime("%Y-%m-%d %H:%M", time.localtime(r["timestamp"]))),
         ("Build", lambda r: r["llama_cpp"])]


def format_table(results: list[dict]) -> str:
    rows = [[title for title, _ in TABLE]] + [[show(r) for _, show in TABLE] for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)
