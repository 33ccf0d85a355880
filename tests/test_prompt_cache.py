"""The prompt cache: a conversation whose slot moved on to another one starts again from its saved
KV cells (engine.prompt_cache_mb), through the real engine; and the store's own rules."""

from __future__ import annotations

import asyncio

import numpy as np

from jarvis.assistant import Assistant
from jarvis.engine.prompt_cache import RESTORE_MAX_RATIO, PromptCache

A = "Write a short paragraph about lighthouses."
B = "List three facts about volcanoes, one per line."


def tokens(*runs) -> np.ndarray:
    return np.concatenate([np.arange(a, b, dtype=np.int32) for a, b in runs])


# ---- the store ----------------------------------------------------------------------------------
def test_a_saved_prompt_that_begins_a_newer_one_gives_way_to_it():
    cache = PromptCache(1000)
    assert cache.put(tokens((0, 20)), b"x" * 100)
    assert cache.holds(tokens((0, 10))) and not cache.holds(tokens((0, 30)))
    assert cache.put(tokens((0, 30)), b"y" * 150)
    assert len(cache) == 1 and cache.bytes == 150
    assert cache.holds(tokens((0, 30)))


def test_the_least_recently_used_goes_first_when_the_budget_is_full():
    cache = PromptCache(100)
    first, second = tokens((0, 20)), tokens((100, 120))
    cache.put(first, b"a" * 40)
    cache.put(second, b"b" * 40)
    assert cache.best(first, 0)[1] == 20  # the first is used: the second is now the oldest
    cache.put(tokens((200, 220)), b"c" * 40)
    assert cache.evictions == 1 and cache.bytes == 80
    assert cache.holds(first) and not cache.holds(second)


def test_no_more_prompts_are_kept_than_the_cap_however_small():
    cache = PromptCache(10**6, max_entries=2)
    for start in (0, 100, 200):
        cache.put(tokens((start, start + 20)), b"x" * 10)
    assert len(cache) == 2 and cache.evictions == 1 and cache.bytes == 20
    assert not cache.holds(tokens((0, 20))) and cache.holds(tokens((200, 220)))


def test_a_state_larger_than_the_whole_budget_is_not_kept():
    cache = PromptCache(100)
    cache.put(tokens((0, 20)), b"a" * 60)
    assert not cache.put(tokens((100, 120)), b"b" * 101)
    assert len(cache) == 1 and cache.evictions == 0  # nothing was thrown out for it either


def test_a_restore_must_share_more_than_the_slot_and_pay_for_its_copy():
    cache = PromptCache(10**6)
    saved = tokens((0, 20), (500, 500 + 20 * RESTORE_MAX_RATIO - 20))  # 20 * RATIO tokens long
    cache.put(saved, b"s" * 1000)
    prompt = tokens((0, 20), (9000, 9010))
    assert cache.best(prompt, 20) is None  # the slot shares as much already
    assert cache.best(prompt, 1) is None  # 19 tokens more would not pay for copying 20 * RATIO
    entry, shared = cache.best(prompt, 0)
    assert shared == 20 and entry.tokens is saved


def test_off_keeps_nothing():
    cache = PromptCache(0)
    assert not cache.enabled and not cache.worth_saving(tokens((0, 100)))


# ---- through the engine -------------------------------------------------------------------------
def run(coro):
    return asyncio.run(coro)


async def a_then_b_then_a(settings, prompt_cache_mb: int):
    """One slot: A runs twice (the second time from the cells A left in the slot), then B takes
    the slot, then A comes back."""
    engine = settings.engine.model_copy(update={"batch_size": 1, "prompt_cache_mb": prompt_cache_mb})
    a = Assistant(settings.model_copy(update={"engine": engine}))
    try:
        await a.catalog.ready()

        def ask(text):
            return a.chat(a.request(text, temperature=0, max_tokens=32, use_cache=False))

        await ask(A)
        from_slot = await ask(A)
        await ask(B)
        back = await ask(A)
        return from_slot, back, a.manager.loaded()[0]["prompt_cache"]
    finally:
        await a.close()


def test_a_conversation_whose_slot_moved_on_starts_again_from_its_saved_cells(settings):
    """A's cells were saved when B took the slot; A then prefills only its last prompt token, as
    it did when the slot still held them, and answers the same: the cells restored are the very
    cells the slot held (the same batch shapes made them), so the reply is equal by construction."""
    from_slot, back, cache = run(a_then_b_then_a(settings, prompt_cache_mb=256))
    assert from_slot.record.cached_prompt_tokens == from_slot.record.prompt_tokens - 1
    assert back.record.cached_prompt_tokens == back.record.prompt_tokens - 1
    assert back.text == from_slot.text and back.text
    assert cache["restores"] == 1 and cache["restored_tokens"] == back.record.prompt_tokens - 1
    assert cache["saves"] >= 1 and 0 < cache["bytes"] <= cache["limit_bytes"] == 256 << 20


def test_with_the_prompt_cache_off_a_returning_conversation_prefills_again(settings):
    _, back, cache = run(a_then_b_then_a(settings, prompt_cache_mb=0))
    assert back.record.cached_prompt_tokens < back.record.prompt_tokens - 1  # only the template's start
    assert cache == {"entries": 0, "bytes": 0, "limit_bytes": 0, "saves": 0, "restores": 0,
                     "restored_tokens": 0, "evictions": 0}
