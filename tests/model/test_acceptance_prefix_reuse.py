"""Acceptance A and B of the foundation issue, on the real embedded model."""

import itertools

import pytest

from continuum.backends.embedded import EmbeddedBackend, EmbeddedConfig
from continuum.envelope import Envelope, Participant, ReplyTarget, TextPart
from continuum.room import Room, RoomPolicy
from tests.conftest import THREADS

pytestmark = [pytest.mark.anyio, pytest.mark.model]

USER = Participant(id="sam", name="Sam")
QUESTIONS = [
    "What is one habit that makes a team work better?",
    "How should I plan a weekend trip on a budget?",
    "What would you cook with rice, eggs and spinach?",
    "Which book changed how you think?",
    "How do I keep a houseplant alive?",
]


def say(text: str, i: int) -> Envelope:
    return Envelope(
        id=f"m{i}",
        host="test",
        room_id="r",
        author=USER,
        parts=(TextPart(text=text),),
        reply_to=ReplyTarget(host="test", channel="r"),
    )


async def test_a_invariant_prefix_hash_is_identical_over_ten_turns(backend, example_personas):
    maya = example_personas[1] if example_personas[1].id == "maya" else example_personas[0]
    room = Room("acceptance-a", [maya], backend, policy=RoomPolicy(reply_max_tokens=16))
    hashes, prefixes, stable = [], [], []
    for turn in range(10):
        envelope = say(QUESTIONS[turn % len(QUESTIONS)] + f" (#{turn})", turn)
        room.receive(envelope)
        looked_up = room.compose(maya)  # e.g. a host previewing the prompt: a miss
        result = await room.persona_turn(maya, envelope)  # the turn itself: a cache hit
        composed = result.composed
        assert composed is looked_up
        hashes.append(composed.invariant_sha256)
        prefixes.append(composed.prompt[: composed.invariant_len])
        stable.append(composed.prompt[: composed.stable_len])
    assert len(room.history) == 20  # new history in between every turn
    assert len(set(hashes)) == 1 and len(set(prefixes)) == 1
    assert len(prefixes[0]) > 200
    # the stable region only ever grows by appending whole blocks
    for earlier, later in itertools.pairwise(stable):
        assert later.startswith(earlier)
    assert (room.cache.stats.hits, room.cache.stats.misses) == (10, 10)


async def test_b_six_personas_round_robin_evaluate_only_the_volatile_suffix(backend, six_personas):
    # a fresh context on the already-loaded model, so the first round is truly cold
    backend = EmbeddedBackend(
        backend.model, EmbeddedConfig(live_slots=6, slot_ctx=2048, n_threads=THREADS)
    )
    room = Room(
        "acceptance-b",
        six_personas,
        backend,
        policy=RoomPolicy(reply_max_tokens=24, cognition="direct"),
    )
    turns = []  # (persona id, prompt, volatile tokens, metrics)
    stables = []
    for i, question in enumerate(QUESTIONS[:3]):
        room.receive(say(question, i))
        for persona in six_personas:
            composed = room.compose(persona)
            stable = backend.count_tokens(composed.prompt[: composed.stable_len])
            stables.append(stable)
            volatile = backend.count_tokens(composed.prompt) - stable
            result = await room.persona_turn(persona, say(question, i))
            turns.append((persona.id, composed.prompt, volatile, result.metrics))
    assert len(turns) == 18
    cold, warm = turns[:6], turns[6:]
    assert all(m.reused_tokens == 0 for *_, m in cold)
    for persona_id, _prompt, volatile, m in warm:
        assert m.evaluated_tokens <= volatile + 16, (persona_id, m, volatile)
        assert m.reused_tokens >= m.prompt_tokens - volatile - 16
        assert m.prompt_tokens > 250
    # every warm turn reuses at least its whole stable prefix (minus a boundary token)
    for stable, (*_, m) in zip(stables[6:], warm, strict=True):
        assert m.reused_tokens >= stable - 1

    # The naive path: one sequence, the same prompts, re-evaluates everything at each switch.
    naive = EmbeddedBackend(
        backend.model,
        EmbeddedConfig(live_slots=1, hibernate=False, slot_ctx=2048, n_threads=THREADS),
    )
    try:
        from continuum.backends.base import CompletionRequest, GenerationSettings, SlotKey

        for persona_id, prompt, _volatile, m in warm[:6]:
            c = await naive.complete(
                CompletionRequest(
                    prompt=prompt,
                    slot=SlotKey(persona_id=persona_id),
                    settings=GenerationSettings(max_tokens=1),
                )
            )
            assert c.metrics.evaluated_tokens == c.metrics.prompt_tokens == m.prompt_tokens
            assert c.metrics.evaluated_tokens > m.evaluated_tokens
    finally:
        naive.close()
