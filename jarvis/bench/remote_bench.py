"""What going through JARVIS costs over the `openai` client straight to the same remote server.

    .venv/bin/python -m jarvis.bench.remote_bench [--rounds 6] [--max-tokens 64] [--latency-n 20] [--json]

A real OpenAI-compatible server, llama-cpp-python's own `python -m llama_cpp.server` (the [server]
extra of the pinned llama-cpp-python), serves the bundled model on loopback. In the same run:
- direct: `openai.AsyncOpenAI` streaming a greedy reply from that server;
- JARVIS: `Assistant.stream()` for remote model `bench/smol` (the path the desktop, CLI and HTTP
  API share): queue, replica choice, the openai client underneath, records.
Throughput: one greedy stream of `--max-tokens` per round, rounds alternating the two paths,
tokens / wall time (first byte asked to last token); the median per path and their ratio.
Added latency: the same 1-token request timed end to end on each path, alternating; the added
latency is median(JARVIS) - median(direct). The response cache is bypassed (use_cache=False).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time

from jarvis.bench.scratch import scratch_dir

PROMPT = "Write a short paragraph about owls."
SAMPLING = {"top_k": 40, "min_p": 0.05, "repeat_penalty": 1.1}  # JARVIS's defaults, sent by both paths


def server_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("llama_cpp.server", "fastapi", "uvicorn"))


async def direct_stream(client, max_tokens: int) -> tuple[float, int]:
    started = time.perf_counter()
    tokens = 0
    stream = await client.chat.completions.create(model="smol", messages=[{"role": "user", "content": PROMPT}],
                                                  max_tokens=max_tokens, temperature=0, stream=True,
                                                  extra_body=SAMPLING)
    async with stream:
        async for event in stream:
            if event.choices and event.choices[0].delta.content:
                tokens += 1
    return time.perf_counter() - started, tokens


async def jarvis_stream(assistant, max_tokens: int) -> tuple[float, int]:
    started = time.perf_counter()
    tokens = 0
    request = assistant.request(PROMPT, model="bench/smol", max_tokens=max_tokens, temperature=0, use_cache=False)
    async for chunk in assistant.stream(request):
        if chunk.text:
            tokens += 1
    return time.perf_counter() - started, tokens


async def bench(args) -> dict:
    from jarvis.bench.llama_server import LlamaCppServer  # the same server the tests use
    import openai

    from jarvis.assistant import Assistant
    from jarvis.catalog import bundled_model_path
    from jarvis.config import load_settings
    from jarvis.remote.settings import with_remotes

    model = bundled_model_path()
    with LlamaCppServer(model, n_ctx=1024) as server:
        data = scratch_dir("jarvis-remote-bench-")
        settings = with_remotes(load_settings(environ={"JARVIS_GENERAL_DATA_DIR": data, "JARVIS_MODELS_WARMUP": ""}),
                                [f"bench={server.base_url}"])
        assistant = Assistant(settings)
        direct = openai.AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        try:
            await direct_stream(direct, 4)  # warm both paths (connections, the server's first prompt)
            await jarvis_stream(assistant, 4)
            rows: dict[str, list[tuple[float, int]]] = {"direct": [], "jarvis": []}
            for r in range(args.rounds):
                for path in (("direct", "jarvis") if r % 2 == 0 else ("jarvis", "direct")):
                    rows[path].append(await (direct_stream(direct, args.max_tokens) if path == "direct"
                                             else jarvis_stream(assistant, args.max_tokens)))
            lat: dict[str, list[float]] = {"direct": [], "jarvis": []}
            for i in range(args.latency_n):
                for path in (("direct", "jarvis") if i % 2 == 0 else ("jarvis", "direct")):
                    s, _ = await (direct_stream(direct, 1) if path == "direct" else jarvis_stream(assistant, 1))
                    lat[path].append(s * 1000)
        finally:
            await direct.close()
            await assistant.close()
    tok_s = {p: statistics.median(n / s for s, n in v) for p, v in rows.items()}
    ms = {p: statistics.median(v) for p, v in lat.items()}
    return {"remote_direct_tok_s": tok_s["direct"], "remote_jarvis_tok_s": tok_s["jarvis"],
            "remote_vs_direct_tok_s_ratio": tok_s["jarvis"] / tok_s["direct"],
            "remote_direct_latency_ms": ms["direct"], "remote_jarvis_latency_ms": ms["jarvis"],
            "remote_added_latency_ms": ms["jarvis"] - ms["direct"],
            "remote_tokens_per_stream": statistics.median(n for _, n in rows["jarvis"]),
            "remote_rounds": args.rounds, "remote_latency_n": args.latency_n}


def run(quick: bool = False) -> dict:
    """For `jarvis bench`: {} when the [server] extra (llama_cpp.server) is not installed."""
    if not server_available():
        return {}
    ns = argparse.Namespace(rounds=4 if quick else 8, max_tokens=48 if quick else 96, latency_n=10 if quick else 30)
    return asyncio.run(bench(ns))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jarvis.bench.remote_bench")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--max-tokens", type=int, default=96)
    p.add_argument("--latency-n", type=int, default=30)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if not server_available():
        print("remote bench: needs llama-cpp-python's [server] extra (pip install -e '.[test]')", file=sys.stderr)
        return 1
    results = asyncio.run(bench(args))
    if not args.json:
        print(f"direct (openai client -> server) {results['remote_direct_tok_s']:8.1f} tok/s   "
              f"1-token request {results['remote_direct_latency_ms']:7.1f} ms")
        print(f"through JARVIS                   {results['remote_jarvis_tok_s']:8.1f} tok/s   "
              f"1-token request {results['remote_jarvis_latency_ms']:7.1f} ms")
        print(f"ratio {results['remote_vs_direct_tok_s_ratio']:.3f} (target >= 0.95), added "
              f"{results['remote_added_latency_ms']:+.2f} ms per request (target <= 5)")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
