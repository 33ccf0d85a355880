"""The semantic cache level on the real bundled model (its own embeddings): paraphrases are
answered from the cache, near-misses (numbers, negations, names) are vetoed, and requests that may
not share an answer never do."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from bench.support.settings import make_settings, tune

from jarvis.assistant import Assistant
from jarvis.cache import CacheLevels
from jarvis.cache.guards import veto
from jarvis.catalog import Catalog
from jarvis.http.openai_schema import chat_request
from jarvis.request_options import Grammar, RequestOptions

THRESHOLD = 0.95
# (earlier prompt, later prompt): the later must be answered with the earlier's reply.
PARAPHRASES = [("What is the capital of France?", "What's the capital city of France?"),
               ("How do I reverse a list in Python?", "How can I reverse a Python list?")]
# (earlier, later, why the guards refuse): close in the vector space, a different question.
NEAR_MISSES = [("What is 2+2?", "What is 2+3?", "numbers differ"),
               ("Is coffee bad for you?", "Is coffee not bad for you?", "negation differs"),
               ("Who wrote Hamlet?", "Who wrote Macbeth?", "named entities differ")]


def semantic_assistant(tmp_path, model_copy, **cache) -> Assistant:
    model_copy("a")
    model_copy("b")
    s = make_settings(tmp_path / "data", JARVIS_ENGINE_CONTEXT_LENGTH="512")
    s = tune(s, cache={"semantic": True, "semantic_model": "a", "semantic_threshold": THRESHOLD, **cache})
    return Assistant(s, catalog=Catalog([tmp_path / "models"], include_bundled=False))


def greedy(a: Assistant, text: str, model: str = "a", **kw):
    kw.setdefault("temperature", 0)
    return a.request(text, model=model, max_tokens=4, **kw)


def test_the_guards_veto_numbers_negations_and_names_but_not_rewording():
    for earlier, later in PARAPHRASES:
        assert veto(later, earlier) == ""
    for earlier, later, why in NEAR_MISSES:
        assert veto(later, earlier) == why


def test_paraphrases_hit_and_near_misses_are_vetoed(tmp_path, model_copy):
    async def body():
        a = semantic_assistant(tmp_path, model_copy)
        try:
            out = []
            for earlier, later, *_ in PARAPHRASES + NEAR_MISSES:
                first = await a.chat(greedy(a, earlier))
                second = await a.chat(greedy(a, later))
                out.append((first, second))
            return out, a.cache.stats().levels["semantic"]
        finally:
            await a.close()

    pairs, semantic = asyncio.run(body())
    for first, second in pairs[:len(PARAPHRASES)]:
        r = second.record
        assert r.cache == "semantic" and second.text == first.text
        assert r.cache_similarity >= THRESHOLD and r.cache_match.startswith("prompt-")
        assert r.completion_tokens == first.record.completion_tokens and r.cache_hit
    for _, second in pairs[len(PARAPHRASES):]:
        assert second.record.cache == "miss" and second.record.cache_similarity == 0
    assert semantic["hits"] == len(PARAPHRASES) and semantic["vetoes"] == len(NEAR_MISSES)


def test_requests_that_may_not_share_an_answer_never_hit(tmp_path, model_copy):
    earlier, later = PARAPHRASES[0]
    grammar = RequestOptions(grammar=Grammar('root ::= "Paris"', "JSON"))

    async def body():
        a = semantic_assistant(tmp_path, model_copy)
        try:
            await a.chat(greedy(a, earlier))
            asked = {
                "random sampling": greedy(a, later, temperature=0.8, seed=-1),
                "grammar": replace(greedy(a, later), options=grammar),
                "other system prompt": greedy(a, later, system="You are a pirate."),
                "other model": greedy(a, later, model="b"),
                "other sampling": greedy(a, later, top_k=7),
                "cache exact": replace(greedy(a, later), semantic=False),
            }
            return {why: (await a.chat(req)).record.cache for why, req in asked.items()}
        finally:
            await a.close()

    seen = asyncio.run(body())
    assert seen == {"random sampling": "off", "grammar": "miss", "other system prompt": "miss",
                    "other model": "miss", "other sampling": "miss", "cache exact": "miss"}


def test_a_body_can_opt_out_of_the_semantic_level():
    from jarvis.sampling import SamplingParams

    _, req = chat_request({"messages": [{"role": "user", "content": "hi"}], "cache": "exact"}, SamplingParams())
    assert req.semantic is False and req.use_cache is True
    _, req = chat_request({"messages": [{"role": "user", "content": "hi"}], "cache": False}, SamplingParams())
    assert req.use_cache is False


def test_semantic_on_without_a_model_says_what_to_set(tmp_path):
    s = tune(make_settings(tmp_path / "data"), cache={"semantic": True})
    levels = CacheLevels.from_settings(s)
    status = levels.stats().levels["semantic"]["status"]
    assert status.startswith("off:") and "cache.semantic_model" in status and "jarvis models" in status
