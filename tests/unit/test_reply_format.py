"""A reply asked for as data (Envelope.reply_format): the persona's own turn, with the
JSON schema and token budget the host asked for reaching the backend."""

from __future__ import annotations

import json

import pytest

from continuum.envelope import Envelope, Participant, ReplyFormat, ReplyTarget, TextPart
from continuum.persona import Persona
from continuum.room import Room, RoomPolicy
from continuum.testing import ScriptedBackend

pytestmark = pytest.mark.anyio

SCHEMA = {
    "type": "object",
    "properties": {"findings": {"type": "array", "items": {"type": "string"}}},
    "required": ["findings"],
}


async def test_the_schema_and_budget_reach_the_backend_and_the_reply_is_the_json():
    backend = ScriptedBackend(lambda req: json.dumps({"findings": ["x is unused"]}))
    juno = Persona(id="juno", name="Juno", identity="A reviewer.")
    room = Room("r", [juno], backend, policy=RoomPolicy(cognition="direct", reply_max_tokens=24))
    envelope = Envelope(
        host="lsp",
        room_id="r",
        author=Participant(id="u", name="Sam"),
        parts=(TextPart(text="Review this file."),),
        reply_to=ReplyTarget(host="lsp", channel="r"),
        mentions=("juno",),
        reply_format=ReplyFormat(json_schema=SCHEMA, max_tokens=300),
    )
    [reply] = await room.handle(envelope)
    [request] = backend.requests
    assert request.json_schema == SCHEMA
    assert request.settings.max_tokens == 300
    assert json.loads(reply.message.text) == {"findings": ["x is unused"]}
    # a plain message afterwards is words again, within the room's budget
    await room.handle(envelope.model_copy(update={"id": "m2", "reply_format": None}))
    assert backend.requests[-1].json_schema is None
    assert backend.requests[-1].settings.max_tokens == 24
