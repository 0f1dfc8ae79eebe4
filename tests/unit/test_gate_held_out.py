"""Who speaks, on phrasing the gate was not calibrated on (issue 21, item 1): the right
persona by its best-fitting specialty phrase, and silence — not an arbitrary persona —
when nobody fits. Cases from bench/eval/gate_held_out.py's held-out set that the gate
before got wrong; the room's real decision (shared cognition, the scripted model's
analysis falls back to the message itself)."""

from __future__ import annotations

import pytest

from continuum.envelope import Envelope, Participant, ReplyTarget, TextPart
from continuum.room import Room, RoomPolicy
from continuum.testing import ScriptedBackend

pytestmark = pytest.mark.anyio


def ask(text: str) -> Envelope:
    return Envelope(
        host="t",
        room_id="r",
        author=Participant(id="sam", name="Sam"),
        parts=(TextPart(text=text),),
        reply_to=ReplyTarget(host="t", channel="r"),
    )


@pytest.mark.parametrize(
    ("message", "speakers", "stand_out"),
    [
        ("I feel like everyone at work is smarter than me", ["pip"], 0.0),  # before: +Maya
        ("what did people use to tell time before watches?", ["otto"], 0.0),  # before: +Maya
        # a room that prefers silence when nobody clearly fits ([policy] quorum_stand_out)
        ("anyone seen my umbrella?", [], 0.15),  # before: Rhea, handed the turn by the quorum
        ("lunch at noon today?", [], 0.15),
    ],
)
async def test_the_room_picks_the_fitting_persona_or_nobody(
    six_personas, message, speakers, stand_out
):
    policy = RoomPolicy(quorum_stand_out=stand_out)
    room = Room("r", six_personas, ScriptedBackend(lambda req: "Sure."), policy=policy)
    replies = await room.handle(ask(message))
    assert sorted(r.persona_id for r in replies) == speakers
