"""What the Responses and Messages translators cost over chat completions. Not a test.

    .venv/bin/python -m jarvis.bench.api_surfaces_bench [--rounds 6] [--max-tokens 64]

One Runtime (bundled model preloaded) serves all three surfaces in the same run; a separate
client process (its own GIL and loop, as a real client) streams the same greedy prompt through
/v1/chat/completions, /v1/responses and /v1/messages, one request at a time, the order rotating
every round. Per request: time to the first answer delta (TTFT, as the client sees it) and
decode tokens/s (completion tokens after the first / time from the first delta to the last).
Every request sets cache=false: the engine answers each one. Prints a table, then one JSON line:
the medians per surface, each surface's tok/s ratio to chat completions and its TTFT difference.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time

from jarvis.bench.scratch import scratch_dir

PROMPT = "Write a short paragraph about owls."
SURFACES = ("chat", "responses", "messages")


def body(surface: str, max_tokens: int) -> tuple[str, dict]:
    common = {"model": "", "temperature": 0, "stream": True, "cache": False}
    if surface == "chat":
        return "/v1/chat/completions", {**common, "messages": [{"role": "user", "content": PROMPT}],
                                        "max_tokens": max_tokens, "stream_options": {"include_usage": True}}
    if surface == "responses":
        return "/v1/responses", {**common, "input": PROMPT, "max_output_tokens": max_tokens, "store": False}
    return "/v1/messages", {**common, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": max_tokens}


def first_text_and_tokens(surface: str, event: dict) -> tuple[bool, int | None]:
    """(this event carries answer text, the completion tokens when it reports them)."""
    if surface == "chat":
        text = bool(event.get("choices") and event["choices"][0]["delta"].get("content"))
        return text, (event.get("usage") or {}).get("completion_tokens")
    kind = event.get("type")
    if surface == "responses":
        done = kind in ("response.completed", "response.incomplete")
        return kind == "response.output_text.delta", event["response"]["usage"]["output_tokens"] if done else None
    return (kind == "content_block_delta" and event["delta"].get("type") == "text_delta",
            event["usage"]["output_tokens"] if kind == "message_delta" else None)


# ---- the client process ----------------------------------------------------------------------
async def client(url: str, rounds: int, max_tokens: int) -> dict:
    import aiohttp

    out: dict[str, list] = {s: [] for s in SURFACES}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        async def one(surface: str) -> dict:
            path, payload = body(surface, max_tokens)
            started = time.perf_counter()
            first = last = 0.0
            tokens = 0
            async with session.post(url + path, json=payload) as resp:
                resp.raise_for_status()
                async for raw in resp.content:
                    line = raw.strip()
                    if not line.startswith(b"data: ") or line == b"data: [DONE]":
                        continue
                    text, count = first_text_and_tokens(surface, json.loads(line[6:]))
                    if text:
                        last = time.perf_counter()
                        first = first or last
                    tokens = count if count is not None else tokens
            return {"ttft_ms": (first - started) * 1000,
                    "tok_s": (tokens - 1) / (last - first) if last > first and tokens > 1 else 0.0, "tokens": tokens}

        for surface in SURFACES:  # warm each path once
            await one(surface)
        for r in range(rounds):
            order = SURFACES[r % 3:] + SURFACES[:r % 3]
            for surface in order:
                out[surface].append(await one(surface))
    return out


def run_client(url: str, rounds: int, max_tokens: int) -> dict:
    done = subprocess.run([sys.executable, "-m", "jarvis.bench.api_surfaces_bench", "--client", url, str(rounds),
                           str(max_tokens)], capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"client failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- the server side -------------------------------------------------------------------------
async def bench(args) -> dict:
    from jarvis.config import load_settings
    from jarvis.http.openai_routes import openai_routes
    from jarvis.runtime import Runtime

    data = scratch_dir("jarvis-surfaces-bench-")
    settings = load_settings(environ={"JARVIS_GENERAL_DATA_DIR": data, "JARVIS_MODELS_WARMUP": ""})
    runtime = Runtime(settings, registrars=[openai_routes])
    await runtime.start(http=True, warmup=False, host="127.0.0.1", port=0)
    try:
        await runtime.assistant.manager.load(runtime.assistant.default_model())
        rows = await asyncio.to_thread(run_client, runtime.server.url, args.rounds, args.max_tokens)
    finally:
        await runtime.close()
    med = {s: {k: statistics.median(r[k] for r in rows[s]) for k in ("ttft_ms", "tok_s")} for s in SURFACES}
    result: dict = {"bench": "api_surfaces", "rounds": args.rounds, "max_tokens": args.max_tokens,
                    "tokens": {s: sorted({r["tokens"] for r in rows[s]}) for s in SURFACES}}
    for s in SURFACES:
        result[f"{s}_tok_s"] = round(med[s]["tok_s"], 2)
        result[f"{s}_ttft_ms"] = round(med[s]["ttft_ms"], 2)
    for s in ("responses", "messages"):
        result[f"{s}_tok_s_ratio"] = round(med[s]["tok_s"] / med["chat"]["tok_s"], 3)
        result[f"{s}_ttft_diff_ms"] = round(med[s]["ttft_ms"] - med["chat"]["ttft_ms"], 2)
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--client"]:
        url, rounds, max_tokens = argv[1], int(argv[2]), int(argv[3])
        print(json.dumps(asyncio.run(client(url, rounds, max_tokens))))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--json", action="store_true", help="print one JSON object only")
    args = p.parse_args(argv)
    result = asyncio.run(bench(args))
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{'surface':<22}{'decode tok/s (median)':>24}{'TTFT ms (median)':>20}")
    for s, label in zip(SURFACES, ("/v1/chat/completions", "/v1/responses", "/v1/messages")):
        print(f"{label:<22}{result[f'{s}_tok_s']:>24.1f}{result[f'{s}_ttft_ms']:>20.2f}")
    for s in ("responses", "messages"):
        print(f"{s}: {result[f'{s}_tok_s_ratio']:.3f}x chat's tok/s (target >= 0.97), TTFT "
              f"{result[f'{s}_ttft_diff_ms']:+.2f} ms (target within 2 ms)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
