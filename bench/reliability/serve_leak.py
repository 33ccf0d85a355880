"""Leak check of `jarvis serve` as a user runs it: one process, N requests over HTTP (short replies,
response cache off so the engine really runs each), the server's RSS (children included), open
files and threads sampled every `every` requests. Fails when RSS grows more than `bound_mb` between
request `start` (allocator pools and first-use caches are filled by then) and the last one, naming
what grew: RSS by stretch, file descriptors, threads. Expected and bounded inside that window: the
request explorer's ring of the last 1,000 RequestRecords filling (about 3 KB each, flat after
request 1,000), well under the bound."""

from __future__ import annotations

import asyncio
import subprocess
import time

import psutil

from bench.reliability.result import Result

PROMPTS = ["Count from 1 to 5.", "Name two fruits.", "What is 2 + 2?", "Say hello in French."]


def _counts(pid: int) -> tuple[float, int, int]:
    from jarvis.bench.footprint_bench import rss_mb

    proc = psutil.Process(pid)
    return rss_mb(pid), proc.num_fds(), proc.num_threads()


async def _load(url: str, pid: int, n: int, every: int, max_tokens: int, r: Result) -> list[tuple[int, float, int, int]]:
    import aiohttp

    samples: list[tuple[int, float, int, int]] = []
    done = 0
    lock = asyncio.Lock()
    todo = iter(range(n))

    async def one(session, i: int) -> None:
        nonlocal done
        body = {"messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}], "max_tokens": max_tokens,
                "temperature": 0, "stream": i % 2 == 0, "cache": False}
        r.tried += 1
        try:
            async with session.post(url + "/v1/chat/completions", json=body) as resp:
                text = await resp.text()
                if resp.status == 200 and text:
                    r.handled += 1
                else:
                    r.lost += 1
                    r.fail(f"request {i}: HTTP {resp.status} {text[:200]}")
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            r.crashes += 1
            r.fail(f"request {i}: {type(e).__name__}: {e}")
        async with lock:
            done += 1
            if done % every == 0:
                samples.append((done, *_counts(pid)))

    async def worker(session) -> None:
        for i in todo:
            await one(session, i)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
        await asyncio.gather(*(worker(session) for _ in range(4)))  # the engine's 4 slots busy
    return samples


def serve_leak(n: int = 1000, every: int = 100, start: int = 200, bound_mb: float = 20.0,
               max_tokens: int = 8) -> Result:
    from jarvis.bench.footprint_bench import jarvis_server
    from jarvis.bench.peer_bench import _stop, free_port, wait_ready

    r = Result(f"jarvis serve, {n} requests (leak check)")
    server = jarvis_server(threads=0)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server.env.pop("JARVIS_ENGINE_N_THREADS")  # its own default; context as the footprint bench
    proc = subprocess.Popen([part.replace("{port}", str(port)) for part in server.cmd], env=server.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.perf_counter()
    try:
        wait_ready(url, proc)
        samples = asyncio.run(_load(url, proc.pid, n, every, max_tokens, r))
    finally:
        _stop(proc)
    base = next((s for s in samples if s[0] >= start), None)
    last = samples[-1] if samples else None
    r.notes["elapsed_s"] = round(time.perf_counter() - started, 1)
    r.notes["samples"] = [{"after": k, "rss_mb": round(rss, 1), "fds": fds, "threads": th} for k, rss, fds, th in samples]
    if base is None or last is None or last[0] <= base[0]:
        r.fail(f"too few samples for a growth figure ({len(samples)}): run more than {start} requests")
        return r
    growth = last[1] - base[1]
    r.notes.update(rss_growth_mb=round(growth, 1), window=f"{base[0]}..{last[0]}", bound_mb=bound_mb)
    if growth > bound_mb:
        steps = [f"{a[0]}->{b[0]}: {b[1] - a[1]:+.1f} MB" for a, b in zip(samples, samples[1:]) if a[0] >= base[0]]
        r.fail(f"RSS grew {growth:.1f} MB between request {base[0]} and {last[0]} (bound {bound_mb:g} MB): "
               + ", ".join(steps))
    if last[2] > base[2]:
        r.fail(f"open file descriptors grew {base[2]} -> {last[2]} between request {base[0]} and {last[0]}")
    if last[3] > base[3]:
        r.fail(f"threads grew {base[3]} -> {last[3]} between request {base[0]} and {last[0]}")
    return r
