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
    assert hippo.busy and len(hippo.queue) == 1
    assert hippo.consolidate_reduced() == 1
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
        {"summary": "x", "salience": 2, "people": [{"name": "Sam", "sentiment": -3}]}
    )
    assert c.salience == 1.0 and c.people[0].sentiment == -0.5
