"""Coming back to a conversation: time to first token with the prompt cache on vs off, same run.

More conversations than the engine has slots, each with a long history, are asked one question
each in turn; then each gets a follow-up (its history, the first answer, a new question). By then
another conversation has taken its slot: with `engine.prompt_cache_mb` > 0 the follow-up starts
from the saved cells of the first turn, with 0 it prefills the whole history again. Rounds
alternate which setting goes first; the figure is the ratio of median follow-up TTFTs (off / on)
in each round, with the follow-ups' replies compared (greedy: the same text either way, unless
the different batch shapes of the two prefills part them).

    python -m jarvis.bench.prompt_cache_bench [--conversations 3 --slots 2 --history-words 400 --rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics

from jarvis.bench.scratch import scratch_dir
from jarvis.assistant import Assistant
from jarvis.config import load_settings
from jarvis.request import Message

TOPICS = ("a harbour town", "a mountain observatory", "a desert railway", "an island school", "a river ferry",
          "a city library", "a winter farm", "a night market")
FIRST_QUESTION = "Summarise my notes in one sentence."
WORDS = ("lantern", "river", "stone", "copper", "meadow", "violet", "thunder", "maple", "orchard", "harbor")


def history(topic: str, words: int) -> list[Message]:
    """A user's long notes about `topic` and a short acknowledgement: the turn the follow-ups build on."""
    notes = " ".join(f"{WORDS[i % len(WORDS)]}{i % 7}" for i in range(words))
    return [Message("user", f"Here are my notes about {topic}: {notes}. Keep them in mind."),
            Message("assistant", f"I have read your notes about {topic}.")]


def make_assistant(slots: int, prompt_cache_mb: int, context_length: int) -> Assistant:
    env = {"JARVIS_MODELS_WARMUP": "", "JARVIS_ENGINE_BATCH_SIZE": str(slots),
           "JARVIS_ENGINE_CONTEXT_LENGTH": str(context_length), "JARVIS_ENGINE_PROMPT_CACHE_MB": str(prompt_cache_mb),
           "JARVIS_ENGINE_LOOKUP_DRAFT": "0", "JARVIS_GPU_USE_GPU": "false",
           "JARVIS_GENERAL_DATA_DIR": scratch_dir("jarvis-prompt-cache-bench-")}
    return Assistant(load_settings(environ=env))


async def one_setting(prompt_cache_mb: int, args) -> dict:
    a = make_assistant(args.slots, prompt_cache_mb, args.context_length)
    try:
        await a.manager.load(await a.resolve_default())
        talks = [history(TOPICS[i % len(TOPICS)], args.history_words) for i in range(args.conversations)]

        async def ask(messages: list[Message]):
            return await a.chat(a.request(None, messages=messages, temperature=0, max_tokens=args.max_tokens,
                                          use_cache=False))

        turns = [[*talk, Message("user", FIRST_QUESTION)] for talk in talks]
        firsts = [await ask(turn) for turn in turns]
        follow_ups = [await ask([*turn, Message("assistant", first.text), Message("user", "Which word comes first?")])
                      for turn, first in zip(turns, firsts)]
        cache = a.manager.loaded()[0]["prompt_cache"]
        return {"ttft_ms": [r.record.ttft_ms for r in follow_ups],
                "prompt_tokens": [r.record.prompt_tokens for r in follow_ups],
                "cached_prompt_tokens": [r.record.cached_prompt_tokens for r in follow_ups],
                "texts": [r.text for r in follow_ups], "prompt_cache": cache}
    finally:
        await a.close()


async def run(args) -> dict:
    on_mb = args.prompt_cache_mb
    rounds = []
    for r in range(args.rounds):
        order = [("on", on_mb), ("off", 0)] if r % 2 == 0 else [("off", 0), ("on", on_mb)]
        res = {name: await one_setting(mb, args) for name, mb in order}
        rounds.append(res)
        if not args.json:
            print(f"  round {r + 1}: follow-up TTFT median on {statistics.median(res['on']['ttft_ms']):8.1f} ms, "
                  f"off {statistics.median(res['off']['ttft_ms']):8.1f} ms; cached tokens on "
                  f"{res['on']['cached_prompt_tokens']} of {res['on']['prompt_tokens']}, off "
                  f"{res['off']['cached_prompt_tokens']}", flush=True)
    ratios = [statistics.median(x["off"]["ttft_ms"]) / statistics.median(x["on"]["ttft_ms"]) for x in rounds]
    same = sum(a == b for x in rounds for a, b in zip(x["on"]["texts"], x["off"]["texts"]))
    total = sum(len(x["on"]["texts"]) for x in rounds)
    return {"bench": "prompt_cache", "conversations": args.conversations, "slots": args.slots,
            "history_words": args.history_words, "rounds": args.rounds, "loadavg": [round(v, 2) for v in os.getloadavg()],
            "follow_up_ttft_ms": {k: round(statistics.median(v for x in rounds for v in x[k]["ttft_ms"]), 1)
                                  for k in ("on", "off")},
            "ttft_off_vs_on": {"median": round(statistics.median(ratios), 2), "all": [round(v, 2) for v in ratios]},
            "prompt_tokens": rounds[0]["on"]["prompt_tokens"],
            "cached_prompt_tokens": {k: rounds[0][k]["cached_prompt_tokens"] for k in ("on", "off")},
            "identical_follow_ups": f"{same}/{total}", "prompt_cache_after": rounds[-1]["on"]["prompt_cache"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="jarvis bench --suite prompt-cache", description=__doc__.split("\n\n")[0])
    p.add_argument("--conversations", type=int, default=3, help="more than --slots, so each loses its slot")
    p.add_argument("--slots", type=int, default=2)
    p.add_argument("--history-words", type=int, default=400, help="the length of each conversation's first turn")
    p.add_argument("--max-tokens", type=int, default=24)
    p.add_argument("--context-length", type=int, default=2048)
    p.add_argument("--prompt-cache-mb", type=int, default=512, help="the setting's value for the 'on' runs")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.conversations <= args.slots:
        p.error("--conversations must exceed --slots: a conversation that keeps its slot needs no cache")
    res = asyncio.run(run(args))
    if args.json:
        print(json.dumps(res))
    else:
        on, off = res["follow_up_ttft_ms"]["on"], res["follow_up_ttft_ms"]["off"]
        print(f"follow-up TTFT: prompt cache on {on:.1f} ms, off {off:.1f} ms; off / on per round "
              f"{res['ttft_off_vs_on']['median']}x ({res['ttft_off_vs_on']['all']}); prompt tokens "
              f"{res['prompt_tokens']}, cached on {res['cached_prompt_tokens']['on']}, off "
              f"{res['cached_prompt_tokens']['off']}; identical follow-ups {res['identical_follow_ups']}")
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
