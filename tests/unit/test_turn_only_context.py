"""Turn-only context (Envelope.context) and prompts that fit the slot: an editor's
selection is read with its question and never kept in history (so a warm turn never
evaluates an old selection again); recalled memories sit before the new message; a
prompt that would overflow the slot is composed with less history, in coarse steps."""

from __future__ import annotations

import pytest

from continuum.envelope import Envelope, Participant, ReplyTarget, TextPart
from continuum.persona import Persona
from continuum.prompt_sources import RetrievalSource, TurnContext, persona_turn_recipe
from continuum.room import Room, RoomPolicy
from continuum.testing import ScriptedBackend

pytestmark = pytest.mark.anyio
MAYA = Persona(id="maya", name="Maya", identity="A performance engineer.")


def envelope(text: str, context: str | None = None, i: int = 0) -> Envelope:
    return Envelope(
        id=f"m{i}",
        host="lsp",
        room_id="ws",
        author=Participant(id="sam", name="Sam"),
        parts=(TextPart(text=text),),
        reply_to=ReplyTarget(host="lsp", channel="ws"),
        mentions=("maya",),
        context=context,
    )


async def test_context_is_read_with_its_message_and_never_kept_in_history():
    backend = ScriptedBackend(lambda req: "Looks fine.")
    room = Room("ws", [MAYA], backend, policy=RoomPolicy(cognition="direct"))
    await room.handle(envelope("Is this right?", "```py\nSECRET_SELECTION = 1\n```", 1))
    assert "SECRET_SELECTION" in backend.requests[-1].prompt
    await room.handle(envelope("And now?", "```py\nsecond = 2\n```", 2))
    prompt = backend.requests[-1].prompt
    assert "second = 2" in prompt
    assert "Is this right?" in prompt and "SECRET_SELECTION" not in prompt  # history: words
    assert all(not m.text.count("```") for m in room.history)


def test_recalled_memories_come_before_the_new_message():
    """Where a small model uses them (bench/eval); the bulky part of a turn goes in
    Envelope.context instead, so what they make the next turn evaluate again is small."""
    recipe = persona_turn_recipe()
    from continuum.envelope import RoomMessage

    message = RoomMessage(author=Participant(id="sam", name="Sam"), text="Where is the offsite?")
    composed = recipe.compose(
        TurnContext(
            persona=MAYA,
            room_id="r",
            history=(),
            new_message=message,
            participants=(),
            retrieval=("Sam said: the offsite is in Bruges.",),
        )
    )
    assert composed.prompt.index("in Bruges") < composed.prompt.index("Where is the offsite?")
    assert RetrievalSource().order < 30


async def test_a_prompt_that_would_overflow_the_slot_gets_less_history():
    backend = ScriptedBackend(lambda req: "ok " * 10)
    backend.slot_ctx = 900  # type: ignore[attr-defined]
    room = Room("ws", [MAYA], backend, policy=RoomPolicy(cognition="direct", reply_max_tokens=64))
    for i in range(12):
        await room.handle(envelope(f"question {i}: " + "words " * 80, i=i))
    counts = [backend.count_tokens(r.prompt) for r in backend.requests]
    assert max(counts) + 64 <= 900
    assert "question 11" in backend.requests[-1].prompt  # the newest is always there
