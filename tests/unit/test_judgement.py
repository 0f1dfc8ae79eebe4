"""Judgement with real people: acknowledgements owe no reply, contested questions make
levers reachable for a small model, and the gate's embedder separates on- from off-topic."""

from __future__ import annotations

import pytest

from continuum.cognition.gate import RelevanceGate, needs_answer
from continuum.events import LeverPulled, PersonaSilent
from tests.unit.test_shared_cognition import JUNO, MAYA, Script, envelope, make_room

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "text", ["ok", "cool", "thanks, that's all for today!", "bye everyone", "lol ok", "👍"]
)
def test_acknowledgements_need_no_answer(text):
    assert not needs_answer(text)


@pytest.mark.parametrize(
    "text", ["ok but is the cache safe?", "Thanks! How do I profile it?", "great work on the cache"]
)
def test_real_messages_do(text):
    assert needs_answer(text)


async def test_an_acknowledgement_forces_nobody_to_speak():
    script = Script()
    room = make_room(script)  # quorum 1
    assert await room.handle(envelope("thanks, that's all for today!")) == []
    reasons = [e.reason for e in room.events.of_type(PersonaSilent)]
    assert len(reasons) == 3 and all("no reply needed" in r for r in reasons)
    assert not script.of("render")
    # a question with no specialist still gets its one voice (the quorum stays for those)
    assert len(await room.handle(envelope("What should I cook tonight?"))) == 1


async def test_a_contested_question_asks_each_planner_for_one_lever():
    script = Script(
        plans={"maya": [{"lever": "seekDisagreement"}], "juno": [{"lever": "claimLead"}]}
    )
    room = make_room(script)
    replies = await room.handle(
        envelope("Should we cache session tokens for latency, or is that a security risk?")
    )
    [plan] = script.of("plan", "maya")
    items = plan.json_schema["properties"]["levers"]
    assert items["minItems"] == items["maxItems"] == 1
    allowed = {v["properties"]["lever"]["const"] for v in items["items"]["anyOf"]}
    assert allowed == {"claimLead", "seekDisagreement", "cedeFloorTo", "withholdContribution"}
    assert "invites different views" in plan.prompt
    pulled = {(e.persona_id, e.lever) for e in room.events.of_type(LeverPulled)}
    assert ("juno", "claimLead") in pulled and ("maya", "seekDisagreement") in pulled
    assert replies[0].persona_id == "juno"  # the claim leads
    # a plain question keeps the open menu (0-2 levers)
    script2 = Script()
    room2 = make_room(script2)
    await room2.handle(envelope("How do I profile the cache latency?"))
    assert all("minItems" not in p.json_schema["properties"]["levers"] for p in script2.of("plan"))


def test_minilm_separates_on_and_off_topic_messages():
    from continuum.errors import ModelNotInstalled
    from continuum.memory.minilm import INSTALL, MiniLMEmbedder

    try:
        embedder = MiniLMEmbedder.shared()
    except ModelNotInstalled as exc:
        pytest.fail(f"{exc} (or run ./scripts/test); install: {INSTALL}", pytrace=False)
    gate = RelevanceGate(embedder, threshold=embedder.relevance_bar)
    from continuum.cognition.analysis import SharedAnalysis

    a = SharedAnalysis()
    on = gate.score(
        [MAYA], "Our API got slow after adding a layer, how do I find the bottleneck?", a, {}
    )
    off = gate.score([MAYA], "What should I cook for dinner with leftover rice?", a, {})
    assert on[0].similarity > embedder.relevance_bar > off[0].similarity
    juno_on = gate.score([JUNO], "Someone may have stolen our admin credentials.", a, {})
    assert juno_on[0].passes


async def test_a_lever_handing_the_floor_to_a_persona_that_does_not_fit_is_refused():
    script = Script(plans={"juno": [{"lever": "cedeFloorTo", "persona": "otto"}]})
    room = make_room(script, lever_fit=0.5)  # the default
    replies = await room.handle(envelope("password attack?"))
    assert [r.persona_id for r in replies] == ["juno"]  # juno still answers
    [(who, lever, effect)] = [
        (e.persona_id, e.lever, e.effect) for e in room.events.of_type(LeverPulled)
    ]
    assert (who, lever) == ("juno", "cedeFloorTo") and effect.startswith("refused: otto")


async def test_the_gate_embeds_off_the_event_loop_and_once_per_text():
    """A sentence-model pass is CPU time: done in a worker thread before scoring, and a
    persona's specialty or a repeated text is embedded once, not once per room."""
    import threading

    import numpy as np

    from continuum.cognition.analysis import SharedAnalysis
    from continuum.cognition.gate import specialty_phrases
    from continuum.memory.minilm import MiniLMEmbedder

    calls: list[tuple[str, str]] = []

    class Counting:
        dim = 4

        def embed(self, texts: list[str]) -> np.ndarray:
            calls.extend((threading.current_thread().name, t) for t in texts)
            return np.ones((len(texts), 4), np.float32) / 2

    gate = RelevanceGate(Counting())
    await gate.prepare([MAYA, JUNO], "How do I profile the cache?")
    # each persona's whole specialty text and its phrases, and the message: once each
    phrases = len(specialty_phrases(MAYA)) + len(specialty_phrases(JUNO))
    assert len(calls) == 3 + phrases and all(name != "MainThread" for name, _ in calls)
    gate.score([MAYA, JUNO], "How do I profile the cache?", SharedAnalysis(), {})
    assert len(calls) == 3 + phrases  # score found every vector ready
    await gate.prepare([MAYA, JUNO], "How do I profile the cache?")
    assert len(calls) == 3 + phrases  # nothing embedded twice

    embedder = MiniLMEmbedder.shared()
    forward = embedder._one
    passes: list[str] = []
    embedder._one = lambda text: passes.append(text) or forward(text)  # type: ignore[method-assign]
    try:
        first = embedder.embed(["a persona's specialty, embedded for room one"])
        again = embedder.embed(["a persona's specialty, embedded for room one"])
    finally:
        del embedder._one
    assert len(passes) == 1 and np.array_equal(first, again)


def test_concurrent_embeddings_are_batched_and_identical_to_one_at_a_time():
    """Many rooms at once: one thread computes, taking every waiting text as one padded
    batch, and the vectors are those of one text at a time."""
    import threading

    import numpy as np

    from continuum.memory.minilm import MiniLMEmbedder

    embedder = MiniLMEmbedder()
    texts = [f"message {i} about cache latency" + " and a longer tail" * (i % 3) for i in range(24)]
    alone = [embedder._one(t) for t in texts]
    batch = embedder._batch
    sizes: list[int] = []
    embedder._batch = lambda ts: sizes.append(len(ts)) or batch(ts)  # type: ignore[method-assign]
    start = threading.Barrier(len(texts))
    got: dict[int, np.ndarray] = {}

    def room(i: int) -> None:
        start.wait()
        got[i] = embedder.embed([texts[i]])[0]

    threads = [threading.Thread(target=room, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(sizes) == len(texts) and len(sizes) < len(texts)  # batched, each text once
    for i, vec in got.items():
        assert np.allclose(vec, alone[i], atol=1e-5)
