"""Learning from turns, end to end on the default model: a persona's turns in real rooms
become training pairs → a PEFT LoRA trained on the GGUF base (dequantized) → converted by
llama.cpp's converter → registered → loaded on the Q4 base → its greedy replies to
questions it never saw move toward what it was taught (a measured score)."""

from __future__ import annotations

from difflib import SequenceMatcher

import pytest

from continuum.envelope import Envelope
from continuum.events import ReplyPosted
from continuum.genome.pairs import PairLog
from continuum.genome.registry import GenomeRegistry, resolve_persona
from continuum.genome.train import train_adapter
from continuum.genome.train_spec import TrainSpec
from continuum.persona import Persona
from continuum.room import Room
from continuum.testing import ScriptedBackend
from tests.genome import teaching

pytestmark = [pytest.mark.anyio, pytest.mark.model]

TAUGHT = dict(list(teaching.TAUGHT.items())[:12])
UNSEEN = dict(list(teaching.UNSEEN.items())[:4])
POLICY, taught = teaching.POLICY, teaching.taught


def maya(learning: bool) -> Persona:
    return teaching.persona(learning)


def question(i: int, country: str) -> Envelope:
    return teaching.question(f"q{i}", country, ("sam", "lee")[i % 2])


async def test_a_persona_learns_from_its_own_turns(model_path, tmp_path, backend):
    data = tmp_path / "data"
    log = PairLog(data)
    # 1. the persona's turns, one room per question (its history never shows the answer)
    teacher = ScriptedBackend(teaching.teacher())
    replies = []
    for i, country in enumerate(TAUGHT):
        room = Room(f"q{i}", [maya(True)], teacher, policy=POLICY, pairs=log)
        await room.handle(question(i, country))
        replies.append((room, room.events.of_type(ReplyPosted)[-1].message.id))
    room, disliked = replies[3]
    room.react(disliked, positive=False)  # a thumbs-down keeps that reply out of training
    pairs = log.pairs("maya", "geography")
    assert len(pairs) == len(TAUGHT) and log.domains("maya") == {"geography": len(TAUGHT)}
    assert pairs[0].prompt.startswith("<|im_start|>system") and "France" in pairs[0].prompt
    assert pairs[0].response == taught("France", "Paris") and pairs[0].people == ("sam",)
    assert [p.score for p in pairs].count(-1) == 1

    # 2. train → convert → register
    registry = GenomeRegistry(data, base_model=model_path)
    spec = TrainSpec(steps=20, batch_size=3, learning_rate=2e-3, heldout_fraction=0.25)
    record, report = train_adapter(registry, "maya", "geography", pairs, spec=spec)
    assert report.dropped_disliked == 1
    assert (report.train_pairs, report.heldout_pairs) == (9, 2)
    assert report.heldout_loss_after < 0.3 * report.heldout_loss_before, report
    assert record.id == "geography-learned" and record.people == ("lee", "sam")
    assert record.rank == 8 and set(record.targets) >= {"attn_q", "attn_v"}
    assert "held-out loss" in record.provenance

    # 3. served on the Q4 base: replies to unseen questions move toward the training targets
    learned = resolve_persona(maya(False), registry)
    assert [a.id for a in learned.adapters] == ["geography-learned"]

    async def ask(persona: Persona, i: int, country: str) -> tuple[str, tuple[str, ...]]:
        room = Room(f"u{i}-{len(persona.adapters)}", [persona], backend, policy=POLICY)
        await room.handle(question(100 + i, country))
        posted = room.events.of_type(ReplyPosted)[-1]
        return posted.message.text, posted.metrics.adapters

    def score(text: str, country: str) -> float:
        return SequenceMatcher(None, text, taught(country, UNSEEN[country])).ratio()

    def in_taught_form(text: str) -> bool:
        return text.startswith("Ahoy!") and "matey" in text

    base_scores, learned_scores, learned_form, base_form = [], [], 0, 0
    for i, country in enumerate(UNSEEN):
        base_text, base_adapters = await ask(maya(False), i, country)
        text, adapters = await ask(learned, i, country)
        assert base_adapters == () and adapters == ("geography-learned",)
        base_scores.append(score(base_text, country))
        learned_scores.append(score(text, country))
        learned_form += in_taught_form(text)
        base_form += in_taught_form(base_text)
    # the replies move toward the targets; the habit itself (not the shared words of a
    # correct answer, which a base reply can already score 0.83 on) is what was learned
    base_mean = sum(base_scores) / len(base_scores)
    learned_mean = sum(learned_scores) / len(learned_scores)
    assert learned_mean > base_mean, (base_scores, learned_scores)
    assert learned_form >= 3 and base_form == 0, (base_scores, learned_scores)

    # 4. forgetting a person removes their pairs and the adapter trained on them
    assert log.forget_person("sam") == 6 and len(log.pairs("maya", "geography")) == 6
    assert [r.id for r in registry.forget_person("sam")] == ["geography-learned"]
    assert registry.records("maya") == []
