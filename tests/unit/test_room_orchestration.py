"""Pure orchestration with a scripted backend: think-block isolation, failure handling,
cascade guard and the plugin seam. Model behaviour is tested in tests/model."""

import pytest

from continuum.envelope import Envelope, Participant, ParticipantKind, ReplyTarget, TextPart
from continuum.errors import BackendError
from continuum.events import ThinkBlockEmitted, TurnFailed
from continuum.persona import Persona
from continuum.room import Room, RoomPolicy
from tests.scripted_backend import ScriptedBackend

pytestmark = pytest.mark.anyio

A = Persona(id="ana", name="Ana", identity="A.")
B = Persona(id="ben", name="Ben", identity="B.")
DIRECT = RoomPolicy(cognition="direct")  # these tests are about the direct path


def envelope(text, author=None):
    return Envelope(
        host="test",
        room_id="r",
        author=author or Participant(id="u", name="Uma"),
        parts=(TextPart(text=text),),
        reply_to=ReplyTarget(host="test", channel="r"),
    )


async def test_think_blocks_go_to_events_not_to_other_personas():
    def reply(req):
        if req.slot.persona_id == "ana":
            return "<think>secret plan 42</think>Hello from Ana."
        return "Hi, Ben here."

    backend = ScriptedBackend(reply)
    room = Room("r", [A, B], backend, policy=DIRECT)
    replies = await room.handle(envelope("hello"))
    assert [r.message.text for r in replies] == ["Hello from Ana.", "Hi, Ben here."]
    thinks = room.events.of_type(ThinkBlockEmitted)
    assert len(thinks) == 1 and thinks[0].think.text == "secret plan 42"
    assert thinks[0].think.persona_id == "ana"
    ben_prompt = backend.requests[1].prompt
    assert "Hello from Ana." in ben_prompt and "secret plan" not in ben_prompt
    # Ana's own next prompt re-renders her reply exactly as generated (prefix stays valid)
    await room.handle(envelope("again"))
    assert "<think>secret plan 42</think>Hello from Ana." in backend.requests[2].prompt


async def test_dead_backend_makes_the_persona_say_so_and_the_room_goes_on():
    def reply(req):
        if req.slot.persona_id == "ana":
            raise BackendError("connection refused")
        return "Ben is fine."

    room = Room("r", [A, B], ScriptedBackend(reply), policy=DIRECT)
    replies = await room.handle(envelope("hello"))
    # the persona says it cannot think; the error goes to the log and stream, not the channel
    assert replies[0].error == "connection refused"
    assert "can't think right now" in replies[0].message.text
    assert "connection refused" not in replies[0].message.text
    assert replies[1].message.text == "Ben is fine." and replies[1].error is None
    assert room.events.of_type(TurnFailed)[0].persona_id == "ana"


async def test_persona_and_bot_messages_trigger_no_persona_turns():
    backend = ScriptedBackend(lambda req: "x")
    room = Room("r", [A, B], backend, policy=DIRECT)
    bot = Participant(id="ben", name="Ben", kind=ParticipantKind.PERSONA)
    assert await room.handle(envelope("from a persona", author=bot)) == []
    assert backend.requests == []


async def test_a_mention_is_answered_by_who_is_mentioned():
    backend = ScriptedBackend(lambda req: req.slot.persona_id)
    room = Room("r", [A, B], backend, policy=DIRECT)
    e = envelope("@ben first").model_copy(update={"mentions": ("ben",)})
    assert [r.persona_id for r in await room.handle(e)] == ["ben"]


async def test_with_addressed_shared_mentions_go_first():
    backend = ScriptedBackend(lambda req: req.slot.persona_id)
    room = Room("r", [A, B], backend, policy=DIRECT.model_copy(update={"addressed": "shared"}))
    e = envelope("@ben first").model_copy(update={"mentions": ("ben",)})
    assert [r.persona_id for r in await room.handle(e)] == ["ben", "ana"]


def test_builtin_plugins_come_through_entry_points():
    from continuum.hosts.console import ConsoleHost
    from continuum.plugins import backends, hosts, plugin_names

    assert hosts()["console"] is ConsoleHost
    assert "embedded" in backends()
    assert {"console", "embedded"} <= set(plugin_names())


def test_console_host_rejects_non_text_events():
    from continuum.errors import MalformedEvent
    from continuum.hosts.base import PersonaCard
    from continuum.hosts.console import ConsoleHost

    class Services:
        host = "console"

        def personas(self):
            return [PersonaCard(id=p.id, name=p.name) for p in (A, B)]

        def addressed(self, text, **where):
            from continuum.addressing import addressed

            return addressed(text, self.personas())

    host = ConsoleHost(Services())
    with pytest.raises(MalformedEvent):
        host.to_envelope({"forged": True})
    e = host.to_envelope("hey @ben and @nobody")
    assert e.mentions == ("ben",) and e.text == "hey @ben and @nobody"


async def test_speaker_prefixes_are_stripped_from_what_others_see():
    backend = ScriptedBackend(lambda req: "Ben: I am Ana, really.")
    room = Room("r", [A, B], backend, policy=DIRECT)
    replies = await room.handle(envelope("hi"))
    assert replies[0].message.text == "I am Ana, really."
    assert replies[0].message.raw_text == "Ben: I am Ana, really."


async def test_structured_output_tolerates_control_characters_in_strings():
    from pydantic import BaseModel

    from continuum.backends.base import CompletionRequest
    from continuum.structured import complete_structured

    class Note(BaseModel):
        text: str

    backend = ScriptedBackend(lambda req: '{"text": "line one\nline two"}')
    r = await complete_structured(backend, CompletionRequest(prompt="x"), Note, Note(text=""))
    assert r.parsed and r.value.text == "line one\nline two"


async def test_a_dm_gets_dm_guidance_and_no_reply_to_an_acknowledgement():
    """A one-persona DM is not a group: its prompt says so, and "ok thanks" is owed no
    reply (before: the acknowledgement rule lived only in shared cognition)."""
    backend = ScriptedBackend(lambda req: "You're welcome!")
    room = Room("dm", [A], backend)
    dm = envelope("how do I profile this?").model_copy(update={"visibility": "dm"})
    await room.handle(dm)
    assert "private conversation with one person" in backend.requests[-1].prompt
    assert "group conversation" not in backend.requests[-1].prompt
    for ack in ("ok thanks", "thanks, that's all for today!", "cool"):
        before = len(backend.requests)
        again = envelope(ack).model_copy(update={"visibility": "dm"})
        assert await room.handle(again) == []
        assert len(backend.requests) == before
    group = Room("g", [A, B], ScriptedBackend(lambda req: "hi"), policy=DIRECT)
    await group.handle(envelope("hello both, what now?"))
    assert "group conversation" in group.backend.requests[-1].prompt
