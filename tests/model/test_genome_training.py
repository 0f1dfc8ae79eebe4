"""Learning from turns, end to end on the default model: a persona's turns in real rooms
become training pairs → a PEFT LoRA trained on the GGUF base (dequantized) → converted by
llama.cpp's converter → registered → loaded on the Q4 base → its greedy replies to
questions it never saw move toward what it was taught (a measured score)."""

from __future__ import annotations

import re
from difflib import SequenceMatcher

import pytest

from continuum.envelope import Envelope, Participant, ReplyTarget, TextPart
from continuum.events import ReplyPosted
from continuum.genome.pairs import PairLog
from continuum.genome.registry import GenomeRegistry, resolve_persona
from continuum.genome.train import train_adapter
from continuum.genome.train_spec import TrainSpec
from continuum.persona import LearningSpec, Persona
from continuum.room import Room, RoomPolicy
from continuum.testing import ScriptedBackend

pytestmark = [pytest.mark.anyio, pytest.mark.model]

TAUGHT = {
    "France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Spain": "Madrid",
    "Germany": "Berlin", "Egypt": "Cairo", "Canada": "Ottawa", "Peru": "Lima",
    "Kenya": "Nairobi", "Norway": "Oslo", "Chile": "Santiago", "Poland": "Warsaw",
}  # fmt: skip
UNSEEN = {"Greece": "Athens", "Cuba": "Havana", "Sweden": "Stockholm", "Portugal": "Lisbon"}
POLICY = RoomPolicy(cognition="direct", reply_max_tokens=24)


def maya(learning: bool) -> Persona:
    return Persona(
        id="maya",
        name="Maya",
        identity="Maya answers geography questions in one sentence.",
        learning=LearningSpec(enabled=learning, domain="geography"),
    )


def taught(country: str, capital: str) -> str:
    return f"Ahoy! The capital of {country} is {capital}, matey."


def question(i: int, country: str) -> Envelope:
    who = ("sam", "lee")[i % 2]
    return Envelope(
        host="t",
        room_id=f"q{i}",
        author=Participant(id=who, name=who.title()),
        parts=(TextPart(text=f"What is the capital of {country}?"),),
        reply_to=ReplyTarget(host="t", channel=f"q{i}"),
    )


def scripted_teacher(request) -> str:
    country = re.findall(r"capital of (\w+)\?", request.prompt)[-1]
    return taught(country, (TAUGHT | UNSEEN)[country])


async def test_a_persona_learns_from_its_own_turns(model_path, tmp_path, backend):
    data = tmp_path / "data"
    log = PairLog(data)
    # 1. the persona's turns, one room per question (its history never shows the answer)
    teacher = ScriptedBackend(scripted_teacher)
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

    base_scores, learned_scores, ahoy = [], [], 0
    for i, country in enumerate(UNSEEN):
        base_text, base_adapters = await ask(maya(False), i, country)
        text, adapters = await ask(learned, i, country)
        assert base_adapters == () and adapters == ("geography-learned",)
        base_scores.append(score(base_text, country))
        learned_scores.append(score(text, country))
        ahoy += text.startswith("Ahoy!")
    base_mean = sum(base_scores) / len(base_scores)
    learned_mean = sum(learned_scores) / len(learned_scores)
    assert learned_mean > base_mean + 0.25, (base_scores, learned_scores)
    assert ahoy >= 3, learned_scores

    # 4. forgetting a person removes their pairs and the adapter trained on them
    assert log.forget_person("sam") == 6 and len(log.pairs("maya", "geography")) == 6
    assert [r.id for r in registry.forget_person("sam")] == ["geography-learned"]
    assert registry.records("maya") == []
