"""What the OpenAI-compatible HTTP path costs over calling the Assistant in-process. Not a test.

    .venv/bin/python -m jarvis.bench.openai_bench [--streams 4] [--max-tokens 64] [--rounds 3] [--latency-n 20]

One Runtime (bundled model preloaded) serves both paths in the same run:
- in-process: `assistant.stream()` on the Runtime's own loop;
- HTTP: a separate client process (as a real client would be: it does not share this process's
  GIL or loop) speaking SSE to /v1/chat/completions with aiohttp.
Throughput: `--streams` concurrent greedy streams with distinct prompts, aggregate completion
tokens / wall time, rounds alternating between the paths; the median per path and their ratio.
Latency: the same short non-streamed request (`--latency-max-tokens`) timed end to end on each
path, alternating; the added latency is median(HTTP) - median(in-process).
Every request sets cache=false: the response cache must not answer instead of the engine.
Prints a table, then one JSON line.
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

TOPICS = ["owls", "rivers", "bread", "stars", "glaciers", "violins", "deserts", "bees"]


async def sse_events(resp):
    """The JSON events of an OpenAI-style SSE stream (aiohttp response), without `[DONE]`."""
    async for raw in resp.content:
        line = raw.strip()
        if line.startswith(b"data: ") and line != b"data: [DONE]":
            yield json.loads(line[6:])


def prompts(n: int) -> list[str]:
    return [f"Write a short paragraph about {TOPICS[i % len(TOPICS)]}." for i in range(n)]


# ---- the client process ----------------------------------------------------------------------
async def client_streams(url: str, streams: int, max_tokens: int) -> dict:
    import aiohttp

    async def one(session, text: str) -> int:
        body = {"model": "", "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens,
                "temperature": 0, "stream": True, "stream_options": {"include_usage": True}, "cache": False}
        tokens = 0
        async with session.post(url + "/v1/chat/completions", json=body) as resp:
            resp.raise_for_status()
            async for event in sse_events(resp):
                if event.get("usage"):
                    tokens = event["usage"]["completion_tokens"]
        return tokens

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        started = time.perf_counter()
        tokens = await asyncio.gather(*(one(session, p) for p in prompts(streams)))
        return {"wall_s": time.perf_counter() - started, "tokens": sum(tokens)}


async def client_latency(url: str, n: int, max_tokens: int) -> dict:
    import aiohttp

    body = {"model": "", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": max_tokens,
            "temperature": 0, "cache": False}
    times, handler, assistant = [], [], []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        for _ in range(n):
            started = time.perf_counter()
            async with session.post(url + "/v1/chat/completions", json=body) as resp:
                resp.raise_for_status()
                reply = await resp.json()
                handler.append(float(resp.headers["X-Process-Time"]) * 1000)
            times.append((time.perf_counter() - started) * 1000)
            assistant.append(reply["jarvis"]["total_ms"])
    # Where the added time goes: the server's handler (X-Process-Time) around the assistant's
    # own total_ms, and the rest (client, loopback TCP, scheduling) around the handler.
    return {"ms": times, "handler_ms": handler, "assistant_ms": assistant}


def run_client(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-m", "jarvis.bench.openai_bench", "--client", *args],
                         capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"client failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- the server side -------------------------------------------------------------------------
async def inprocess_streams(assistant, streams: int, max_tokens: int) -> dict:
    async def one(text: str) -> int:
        request = assistant.request(text, max_tokens=max_tokens, temperature=0, use_cache=False)
        tokens = 0
        async for chunk in assistant.stream(request):
            if chunk.done and chunk.record:
                tokens = chunk.record.completion_tokens
        return tokens

    started = time.perf_counter()
    tokens = await asyncio.gather(*(one(p) for p in prompts(streams)))
    return {"wall_s": time.perf_counter() - started, "tokens": sum(tokens)}


async def inprocess_latency(assistant, n: int, max_tokens: int) -> dict:
    times = []
    for _ in range(n):
        request = assistant.request("Say hi.", max_tokens=max_tokens, temperature=0, use_cache=False)
        started = time.perf_counter()
        await assistant.chat(request)
        times.append((time.perf_counter() - started) * 1000)
    return {"ms": times}


async def bench(args) -> dict:
    from jarvis.config import load_settings
    from jarvis.http.openai_routes import openai_routes
    from jarvis.runtime import Runtime

    data = scratch_dir("jarvis-openai-bench-")
    settings = load_settings(environ={"JARVIS_GENERAL_DATA_DIR": data, "JARVIS_MODELS_WARMUP": "",
                                      "JARVIS_ENGINE_N_THREADS": str(args.threads)})
    runtime = Runtime(settings, registrars=[openai_routes])
    await runtime.start(http=True, warmup=False, host="127.0.0.1", port=0)
    try:
        assistant = runtime.assistant
        await assistant.manager.load(assistant.default_model())
        url = runtime.server.url
        stream_args = [str(args.streams), str(args.max_tokens)]

        async def http(kind: str, *rest: str) -> dict:
            return await asyncio.to_thread(run_client, [kind, url, *rest])

        await inprocess_streams(assistant, args.streams, 4)  # warm both paths once
        await http("streams", str(args.streams), "4")

        rows = {"inprocess": [], "http": []}
        for r in range(args.rounds):
            order = ("inprocess", "http") if r % 2 == 0 else ("http", "inprocess")
            for path in order:
                res = await (inprocess_streams(assistant, args.streams, args.max_tokens) if path == "inprocess"
                             else http("streams", *stream_args))
                rows[path].append(res["tokens"] / res["wall_s"])
                print(f"  round {r + 1} {path:9s} {res['tokens']:4d} tokens in {res['wall_s']:.2f} s "
                      f"= {rows[path][-1]:.1f} tok/s", file=sys.stderr)

        lat = {"inprocess": [], "http": [], "handler": [], "assistant": []}
        blocks = 4
        per = max(1, args.latency_n // blocks)
        for b in range(blocks):
            lat["inprocess"] += (await inprocess_latency(assistant, per, args.latency_max_tokens))["ms"]
            res = await http("latency", str(per), str(args.latency_max_tokens))
            lat["http"] += res["ms"]
            lat["handler"] += res["handler_ms"]
            lat["assistant"] += res["assistant_ms"]
    finally:
        await runtime.close()

    med = {k: statistics.median(v) for k, v in rows.items()}
    lmed = {k: statistics.median(v) for k, v in lat.items()}
    return {
        "bench": "openai_http_vs_inprocess", "streams": args.streams, "max_tokens": args.max_tokens,
        "rounds": args.rounds, "threads": args.threads, "inprocess_tok_s": round(med["inprocess"], 2), "http_tok_s": round(med["http"], 2),
        "ratio": round(med["http"] / med["inprocess"], 3),
        "latency_n": len(lat["http"]), "latency_max_tokens": args.latency_max_tokens,
        "inprocess_ms_p50": round(lmed["inprocess"], 2), "http_ms_p50": round(lmed["http"], 2),
        "added_ms_p50": round(lmed["http"] - lmed["inprocess"], 2),
        # medians of per-request differences, measured on the HTTP requests themselves
        "handler_overhead_ms_p50": round(statistics.median(h - a for h, a in zip(lat["handler"], lat["assistant"])), 2),
        "outside_handler_ms_p50": round(statistics.median(t - h for t, h in zip(lat["http"], lat["handler"])), 2),
        "all_tok_s": {k: [round(x, 2) for x in v] for k, v in rows.items()},
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--client"]:
        kind, url, *rest = argv[1:]
        coro = client_streams(url, int(rest[0]), int(rest[1])) if kind == "streams" else \
            client_latency(url, int(rest[0]), int(rest[1]))
        print(json.dumps(asyncio.run(coro)))
        return 0
    p = argparse.ArgumentParser(prog="jarvis bench --suite openai", description=__doc__.splitlines()[0])
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--latency-n", type=int, default=20)
    p.add_argument("--latency-max-tokens", type=int, default=4)
    p.add_argument("--threads", type=int, default=0, help="engine.n_threads (0: all cores)")
    p.add_argument("--json", action="store_true", help="print one JSON object only")
    args = p.parse_args(argv)
    result = asyncio.run(bench(args))
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{'path':<12}{'agg tok/s (median)':>20}{'short request p50 ms':>24}")
    print(f"{'in-process':<12}{result['inprocess_tok_s']:>20.1f}{result['inprocess_ms_p50']:>24.2f}")
    print(f"{'HTTP /v1':<12}{result['http_tok_s']:>20.1f}{result['http_ms_p50']:>24.2f}")
    print(f"ratio HTTP/in-process = {result['ratio']:.3f} (target >= 0.9); "
          f"added latency per request = {result['added_ms_p50']:.2f} ms (median of {result['latency_n']})")
    print(f"  of which: handler around the assistant {result['handler_overhead_ms_p50']:.2f} ms, client + loopback + "
          f"scheduling {result['outside_handler_ms_p50']:.2f} ms (medians over the HTTP requests)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
