import anyio
import pytest

from continuum.envelope import Participant, RoomMessage
from continuum.events import EventLog, MessageReceived, ThinkBlockEmitted
from continuum.memory.hippocampus import Hippocampus
from continuum.thinking import ThinkBlock

pytestmark = pytest.mark.anyio
SAM = Participant(id="sam", name="Sam")


def feed(events, think):
    events.emit(MessageReceived(room_id="r", message=RoomMessage(author=SAM, text="hi Maya")))
    events.emit(
        ThinkBlockEmitted(
            room_id="r", think=ThinkBlock(persona_id="maya", message_id="m1", text=think)
        )
    )


async def test_busy_room_gets_reduced_work_without_the_model(engine):
    events = EventLog()
    hippo = Hippocampus(engine, backend=None, quiet_s=60)
    hippo.attach(events)
    feed(events, "I will bring Sam the profiling notes tomorrow.")
    assert hippo.busy and len(hippo.queue) == 2  # what Sam said, and Maya's thought
    assert hippo.consolidate_reduced() == 2  # "hi Maya" holds no fact: nothing written
    [entry] = engine.entries("maya")
    assert entry.commitments and entry.partners == ("sam",) and entry.salience >= 0.6


async def test_event_handlers_never_block(engine):
    events = EventLog()
    hippo = Hippocampus(engine, backend=None)
    hippo.attach(events)
    with anyio.fail_after(0.5):
        for _ in range(2000):
            feed(events, "thinking")
    assert len(hippo.queue) == 512  # bounded


def test_out_of_range_numbers_from_the_model_are_clamped():
    from continuum.memory.hippocampus import Consolidation

    c = Consolidation.model_validate(
        {
            "summary": "x",
            "facts": [],
            "commitments": [],
            "topics": [],
            "salience": 2,
            "people": [{"name": "Sam", "sentiment": -3}],
        }
    )
    assert c.salience == 1.0 and c.people[0].sentiment == -0.5


async def test_model_consolidation_maps_to_journal_and_profile(engine):
    """Orchestration only (scripted backend): facts become an entry, people a contact."""
    import json

    from continuum.room import Room
    from tests.scripted_backend import ScriptedBackend

    consolidation = {
        "summary": "Sam adopted a dog.",
        "facts": ["Sam's dog is called Pixel"],
        "people": [{"name": "Sam", "note": "new dog owner", "sentiment": 0.2}],
        "commitments": [],
        "topics": ["pets"],
        "emotions": ["joy"],
        "salience": 0.9,
    }
    backend = ScriptedBackend(
        lambda req: json.dumps(consolidation) if req.json_schema else "Congratulations!"
    )
    from continuum.persona import Persona

    room = Room("r", [Persona(id="maya", name="Maya", identity="x")], backend, memory=engine)
    hippo = Hippocampus(engine, backend, quiet_s=0.0)
    hippo.attach(room.events, room.id, lambda: list(room.personas))
    from continuum.envelope import Envelope, ReplyTarget, TextPart

    await room.handle(
        Envelope(
            host="t",
            room_id="r",
            author=SAM,
            parts=(TextPart(text="I adopted a dog called Pixel!"),),
            reply_to=ReplyTarget(host="t", channel="r"),
        )
    )
    assert await hippo.consolidate_full_once()  # what Sam said: extracted, no model
    assert await hippo.consolidate_full_once()  # Maya's reply: the model pass
    said, entry = sorted(engine.entries("maya"), key=lambda e: e.told_by is None)
    assert said.text == "Sam said: I adopted a dog called Pixel!" and said.told_by == "sam"
    assert entry.text == "- Sam's dog is called Pixel" and entry.partners == ("sam",)
    assert engine.profile("maya").load().contacts["sam"].notes == ("new dog owner",)
    consolidation["facts"] = []
    await room.handle(
        Envelope(
            host="t",
            room_id="r",
            author=SAM,
            parts=(TextPart(text="ok bye, talk tomorrow?"),),  # an ack alone gets no reply
            reply_to=ReplyTarget(host="t", channel="r"),
        )
    )
    assert await hippo.consolidate_full_once()  # "ok bye": nothing said worth keeping
    consolidation["salience"] = 0.2
    assert await hippo.consolidate_full_once()
    assert len(engine.entries("maya")) == 2  # no facts, not salient: nothing written
    consolidation["salience"] = 0.9
    await room.handle(
        Envelope(
            host="t",
            room_id="r",
            author=SAM,
            parts=(TextPart(text="see you at the vet?"),),
            reply_to=ReplyTarget(host="t", channel="r"),
        )
    )
    assert await hippo.consolidate_full_once() and await hippo.consolidate_full_once()
    texts = [e.text for e in engine.entries("maya")]
    assert "Sam adopted a dog." in texts  # a salient summary is kept without a facts list


async def test_bare_lists_from_the_model_are_not_stored_as_facts(engine):
    """Issue 21: the model pass sometimes listed names or numbers as "facts"; the entry's
    text (what prompts show) was that list, the real content only in its summary."""
    import json

    from continuum.envelope import Envelope, ReplyTarget, TextPart
    from continuum.persona import Persona
    from continuum.room import Room
    from tests.scripted_backend import ScriptedBackend

    consolidation = {
        "summary": "Sam is planning the team offsite in Lisbon with Priya and Dana.",
        "facts": ["Sam, Priya, Dana", "3, 14, 2027"],
        "people": [],
        "commitments": [],
        "topics": ["offsite"],
        "emotions": [],
        "salience": 0.9,
    }
    backend = ScriptedBackend(
        lambda req: json.dumps(consolidation) if req.json_schema else "Sounds fun!"
    )
    room = Room("r", [Persona(id="maya", name="Maya", identity="x")], backend, memory=engine)
    hippo = Hippocampus(engine, backend, quiet_s=0.0)
    hippo.attach(room.events, room.id, lambda: list(room.personas))
    await room.handle(
        Envelope(
            host="t", room_id="r", author=SAM,
            parts=(TextPart(text="Any ideas for the offsite?"),),
            reply_to=ReplyTarget(host="t", channel="r"),
        )
    )  # fmt: skip
    while await hippo.consolidate_full_once():
        pass
    texts = [e.text for e in engine.entries("maya")]
    assert texts == [consolidation["summary"]]
