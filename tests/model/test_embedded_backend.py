"""The embedded backend on the real model: reuse, hibernation, streaming, cancellation,
structured output, limits."""

from typing import Literal

import anyio
import pytest
from pydantic import BaseModel, Field

from continuum.backends.base import CompletionRequest, GenerationSettings, SlotKey
from continuum.backends.embedded import EmbeddedBackend, EmbeddedConfig
from continuum.errors import PromptTooLong
from continuum.structured import complete_structured
from tests.conftest import THREADS

pytestmark = [pytest.mark.anyio, pytest.mark.model]

PROMPT = (
    "<|im_start|>system\nYou are Otto, a retired archivist who tells stories.<|im_end|>\n"
    "<|im_start|>user\nSam: Tell me about the first mechanical clocks.<|im_end|>\n"
    "<|im_start|>assistant\n"
)
GREEDY = GenerationSettings(max_tokens=24, temperature=0)


def req(persona, prompt=PROMPT, settings=GREEDY, **kw):
    return CompletionRequest(
        prompt=prompt, slot=SlotKey(persona_id=persona), settings=settings, **kw
    )


async def test_hibernated_slot_restores_to_identical_output(model_path):
    """What hibernation promises is the KV itself: the bytes restored are the bytes saved,
    and a turn after the restore decodes exactly like the same warm turn before it (both
    reuse the prompt and evaluate its last token: the same batch shapes). A cold turn is
    not compared with a warm one: llama.cpp's CPU kernels round differently for different
    batch shapes on some CPUs (AVX2 without AVX-512), which can change greedy text."""
    b = EmbeddedBackend(model_path, EmbeddedConfig(live_slots=2, slot_ctx=1024, n_threads=THREADS))
    otto = SlotKey(persona_id="otto")
    try:
        await b.complete(req("otto"))  # cold
        warm = await b.complete(req("otto"))  # warm: reuses all but the last prompt token
        assert warm.metrics.reused_tokens == warm.metrics.prompt_tokens - 1
        before = b.slots.state_of(otto)
        await b.complete(req("maya"))
        await b.complete(req("juno"))  # evicts otto (LRU) into hibernation
        assert otto in b.slots.hibernated_keys()
        assert b.slots.state_of(otto) == before
        again = await b.complete(req("otto"))
        assert again.metrics.restored_from_hibernation
        assert again.metrics.reused_tokens == again.metrics.prompt_tokens - 1
        assert again.text == warm.text  # the restored KV is the same KV
    finally:
        b.close()


async def test_hibernation_restores_the_saved_bytes(model_path):
    b = EmbeddedBackend(model_path, EmbeddedConfig(live_slots=1, slot_ctx=1024, n_threads=THREADS))
    otto = SlotKey(persona_id="otto")
    try:
        await b.complete(req("otto"))
        saved = b.slots.state_of(otto)
        await b.complete(req("maya", prompt=PROMPT.replace("Otto", "Maya")))  # evicts otto
        assert b.slots.state_of(otto) == saved
        b.slots.acquire(otto)  # restored into the live sequence
        assert b.slots.peek(otto) is not None and b.slots.state_of(otto) == saved
    finally:
        b.close()


async def test_streaming_yields_the_same_text_as_complete(backend):
    """Both warm on one slot (the same batch shapes), so they decode the same tokens."""
    await backend.complete(req("stream"))  # cold
    whole = await backend.complete(req("stream"))
    async with backend.stream(req("stream")) as tokens:
        deltas = [d async for d in tokens]
    assert tokens.completion.metrics.reused_tokens == whole.metrics.reused_tokens
    assert len(deltas) > 3 and "".join(deltas) == whole.text == tokens.completion.text


async def test_cancellation_stops_generation_and_keeps_the_slot_usable(backend):
    long = GenerationSettings(max_tokens=400, temperature=0)
    seen = []
    with anyio.move_on_after(5):
        async with backend.stream(req("cancel-me", settings=long)) as tokens:
            async for delta in tokens:
                seen.append(delta)
                if len(seen) == 5:
                    break
    assert len(seen) == 5
    key = SlotKey(persona_id="cancel-me")
    cached = backend.slot_tokens(key)
    prompt_tokens = backend.count_tokens(PROMPT)
    assert prompt_tokens <= cached < prompt_tokens + 50  # stopped soon after the break
    after = await backend.complete(req("cancel-me"))
    assert after.metrics.reused_tokens == prompt_tokens - 1  # slot consistent


async def test_stop_strings_cut_the_text(backend):
    c = await backend.complete(
        req("stopper", settings=GenerationSettings(max_tokens=60, temperature=0, stop=(" the",)))
    )
    assert " the" not in c.text and c.finish_reason == "stop"


class Mood(BaseModel):
    reply: str = Field(max_length=200)
    # an enum, so the grammar bounds the output: a free string let a 135M model ramble past
    # any token budget (what was measured was the model, not the grammar)
    emotion: Literal["neutral", "happy", "sad", "curious", "worried"]
    confidence: float


async def test_structured_output_is_grammar_constrained(backend):
    r = await complete_structured(
        backend,
        req("json", settings=GenerationSettings(max_tokens=80, temperature=0)),
        Mood,
        default=Mood(reply="", emotion="neutral", confidence=0),
    )
    assert r.parsed, r.completion.text
    assert isinstance(r.value.confidence, float) and r.value.emotion


async def test_greedy_grammar_shortcut_matches_the_full_grammar_sampler(backend):
    """Greedy JSON checks the grammar on the top logits only; it must pick exactly what
    the grammar sampler over the whole vocabulary picks (a repeat penalty of 1.0001
    forces the full-chain path without changing greedy choices here). Both run warm on
    one slot, so the logits they choose from come from the same batch shapes."""
    schema = Mood.model_json_schema()
    out = {}
    await backend.complete(req("grammar"))  # cold: the prompt's KV, as both runs reuse it
    for name, penalty in (("fast", 1.0), ("full", 1.0001)):
        settings = GenerationSettings(max_tokens=160, temperature=0, repeat_penalty=penalty)
        out[name] = await backend.complete(req("grammar", settings=settings, json_schema=schema))
        assert out[name].metrics.evaluated_tokens == 1
    assert out["fast"].text == out["full"].text
    assert out["fast"].finish_reason == out["full"].finish_reason
    if out["fast"].finish_reason == "stop":  # the grammar closed the object
        Mood.model_validate_json(out["fast"].text)


async def test_structured_output_falls_back_to_the_default_when_cut_short(backend):
    default = Mood(reply="(no answer)", emotion="neutral", confidence=0)
    r = await complete_structured(
        backend,
        req("json-short", settings=GenerationSettings(max_tokens=3, temperature=0)),
        Mood,
        default=default,
    )
    assert not r.parsed and r.value == default and r.error


async def test_prompt_too_long_is_a_clear_error(backend):
    with pytest.raises(PromptTooLong, match="exceeds the slot context"):
        await backend.complete(req("big", prompt=PROMPT * 200))
