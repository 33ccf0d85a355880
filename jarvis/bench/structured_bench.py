"""What constraints and logprobs cost, on the real bundled model, as ratios measured in one run.

- constrained vs unconstrained decode tok/s for answers of the same length (a JSON-schema answer,
  then a free-text answer cut at the same token count), interleaved, median of the repeats
- 4 concurrent constrained requests vs 4 concurrent unconstrained ones of the same lengths:
  aggregate decode tok/s, and the most sequences one llama_decode carried (4 = batched)
- logprobs (top 5) vs none, same prompt and length
- how often the grammar refused the chain's token, and how often the 256-token shortlist did
  not hold an allowed one (a whole-vocabulary grammar pass)

`python -m jarvis.bench.structured_bench [--quick] [--json]`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import time

from jarvis.catalog import bundled_model_path
from jarvis.engine import Engine, EngineConfig
from jarvis.json_grammar import schema_grammar
from jarvis.request import ChatRequest, Message, SamplingParams
from jarvis.request_options import Grammar, RequestOptions
from jarvis.telemetry import RecordBus, StepRecord

log = logging.getLogger("jarvis.bench.structured")

SCHEMA = {"type": "object", "additionalProperties": False, "required": ["city", "days", "budget", "activities"],
          "properties": {"city": {"type": "string", "maxLength": 30}, "days": {"type": "integer"},
                         "budget": {"enum": ["low", "medium", "high"]},
                         "activities": {"type": "array", "minItems": 4, "maxItems": 6,
                                        "items": {"type": "string", "maxLength": 40}}}}
# Long enough for a steady rate; a JSON answer cut here still had every token checked by the grammar.
ANSWER_TOKENS = 64
CONSTRAINED_PROMPTS = ["Plan a trip to Rome.", "Plan a week in Japan.", "Plan a weekend in Paris.",
                       "Plan a holiday by the sea."]
FREE_PROMPTS = ["Write a long story about a dragon.", "Describe the history of Rome in detail.",
                "Explain how computers work, step by step.", "Write a long poem about the ocean."]


class Bench:
    def __init__(self) -> None:
        self.bus = RecordBus()
        self.engine = Engine("bench", bundled_model_path(), "", EngineConfig(batch_size=4, context_length=2048,
                                                                                      request_timeout_s=0),
                             self.bus)
        self.grammar = Grammar(schema_grammar(SCHEMA, "schema"), "JSON")
        self.most_per_step = 0
        self.bus.subscribe(self._on_record)

    def _on_record(self, record) -> None:
        if isinstance(record, StepRecord):
            self.most_per_step = max(self.most_per_step, record.widest_decode)

    async def one(self, prompt: str, max_tokens: int, options: RequestOptions = RequestOptions()):
        request = ChatRequest(messages=(Message("user", prompt),), options=options,
                              sampling=SamplingParams(max_tokens=max_tokens, temperature=0))
        seq = self.engine.submit(request)
        timings = None
        async for chunk in self.engine.stream(seq):
            if chunk.done:
                timings = chunk.record
        return timings, seq.sampler

    async def together(self, jobs) -> tuple[float, list]:
        """Aggregate decode tok/s of jobs run at once: tokens after each one's first, over the span."""
        self.most_per_step = 0
        t0 = time.perf_counter()
        results = await asyncio.gather(*(self.one(*job) for job in jobs))
        wall = time.perf_counter() - t0
        tokens = sum(t.completion_tokens for t, _ in results)
        return tokens / wall, results


async def run(quick: bool) -> dict:
    repeats = 1 if quick else 3
    b = Bench()
    await asyncio.to_thread(b.engine.load)
    try:
        constrained = RequestOptions(grammar=b.grammar)
        await b.one(FREE_PROMPTS[0], 8)  # warm-up
        single_c, single_u, sampled, rejected, full = [], [], 0, 0, 0
        for i in range(repeats):
            prompt = CONSTRAINED_PROMPTS[i % 4]
            tc, sampler = await b.one(prompt, ANSWER_TOKENS, constrained)
            sampled, rejected, full = sampled + sampler.sampled, rejected + sampler.rejected, full + sampler.full_passes
            tu, _ = await b.one(FREE_PROMPTS[i % 4], tc.completion_tokens)
            single_c.append(tc.decode_tokens_per_s)
            single_u.append(tu.decode_tokens_per_s)
            log.info("single %d: constrained %.1f tok/s (%d tokens), free %.1f tok/s", i, tc.decode_tokens_per_s,
                     tc.completion_tokens, tu.decode_tokens_per_s)
        lengths = []
        par_c, par_u, steps_c, steps_u = [], [], [], []
        for _ in range(max(1, repeats // 2)):
            rate_c, results = await b.together([(p, ANSWER_TOKENS, constrained) for p in CONSTRAINED_PROMPTS])
            steps_c.append(b.most_per_step)
            lengths = [t.completion_tokens for t, _ in results]
            rate_u, _ = await b.together([(p, n) for p, n in zip(FREE_PROMPTS, lengths)])
            steps_u.append(b.most_per_step)
            par_c.append(rate_c)
            par_u.append(rate_u)
            log.info("parallel: constrained %.1f tok/s %s, free %.1f tok/s", rate_c, lengths, rate_u)
        lp_on, lp_off = [], []
        for i in range(repeats):
            off, _ = await b.one(FREE_PROMPTS[i % 4], ANSWER_TOKENS)
            on, _ = await b.one(FREE_PROMPTS[i % 4], ANSWER_TOKENS, RequestOptions(logprobs=True, top_logprobs=5))
            lp_off.append(off.decode_tokens_per_s)
            lp_on.append(on.decode_tokens_per_s)
    finally:
        b.engine.close()
    med = statistics.median
    return {
        "constrained_vs_free_tok_s_ratio": med(single_c) / med(single_u),
        "constrained_tok_s": med(single_c), "free_tok_s": med(single_u),
        "parallel4_constrained_vs_free_ratio": med(par_c) / med(par_u),
        "parallel4_constrained_tok_s": med(par_c), "parallel4_free_tok_s": med(par_u),
        "parallel4_constrained_most_per_step": max(steps_c), "parallel4_free_most_per_step": max(steps_u),
        "parallel4_lengths": lengths,
        "grammar_rejection_rate": rejected / sampled if sampled else 0.0,
        "grammar_full_vocab_pass_rate": full / sampled if sampled else 0.0,
        "logprobs_vs_none_tok_s_ratio": med(lp_on) / med(lp_off),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jarvis.bench.structured_bench")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    log.setLevel(logging.INFO)
    os.environ.setdefault("JARVIS_MODELS_WARMUP", "")
    results = asyncio.run(run(args.quick))
    if args.json:
        print(json.dumps(results))
        return 0
    for key, value in results.items():
        print(f"{key:<45} {value if isinstance(value, list) else round(value, 3)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
