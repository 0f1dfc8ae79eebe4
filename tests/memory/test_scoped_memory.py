"""Memory with real people: what they say in ordinary words is written (attributed, with
where and how public), corrections supersede, and recall is scoped to who asks and where —
adversarial cases included (same name, different people; a DM secret asked about in public
by someone else)."""

from __future__ import annotations

from typing import ClassVar

import anyio
import pytest

from continuum.config import parse_config
from continuum.events import ReplyPosted
from continuum.persona import Persona
from continuum.runtime import Runtime
from continuum.testing import RecordingHost, ScriptedBackend, text_envelope

pytestmark = pytest.mark.anyio
MAYA = Persona(id="maya", name="Maya", identity="A performance engineer.")


class Slack(RecordingHost):
    name: ClassVar[str] = "slack"


class Discord(RecordingHost):
    name: ClassVar[str] = "discord"


PEOPLE = [
    {"id": "sam", "name": "Sam", "host_ids": ["slack:U01SAM", "discord:1001"]},
    {"id": "priya", "name": "Priya", "host_ids": ["slack:U02PRI"]},
]


def runtime(tmp_path, backend=None) -> Runtime:
    config = parse_config(
        {
            "memory": {"data_dir": str(tmp_path)},
            "policy": {"cognition": "direct", "recall_k": 5},
            "people": PEOPLE,
            "hosts": {"slack": {}, "discord": {}},
        }
    )
    return Runtime(
        config,
        personas=[MAYA],
        backend=backend or ScriptedBackend(lambda req: "Noted."),
        host_classes={"slack": Slack, "discord": Discord},
    )


async def say(rt: Runtime, host: str, user: str, room: str, visibility: str, text: str):
    e = text_envelope(text, host=host, room_id=room, author=user, visibility=visibility).model_copy(
        update={"author": text_envelope("x", author=user).author}
    )
    turn = await rt.deliver(host, e)
    replies = await turn.wait()
    await rt.hippocampus.drain()
    if not replies:  # an acknowledgement ("lol ok") is owed no reply
        return ()
    events = rt.router.room(f"{host}:{room}").events.recent
    posted = [
        e for e in events if isinstance(e, ReplyPosted) and e.message.id == replies[0].message.id
    ]
    return posted[0].recalled


async def test_natural_phrasings_are_written_with_who_where_and_how_public(tmp_path):
    async with runtime(tmp_path) as rt:
        await say(
            rt,
            "slack",
            "U01SAM",
            "general",
            "public",
            "Our dog Biscuit is coming with me on the trip.",
        )
        await say(rt, "slack", "U01SAM", "general", "public", "lol ok")  # nothing to keep
        [entry] = rt.memory.entries("maya")
    assert "Biscuit" in entry.text and entry.text.startswith("Sam said:")
    assert entry.told_by == "sam" and entry.about == ("sam",)
    assert entry.room == "slack:general" and entry.visibility == "public"


async def test_a_dm_secret_never_reaches_another_person(tmp_path):
    async with runtime(tmp_path) as rt:
        await say(
            rt,
            "slack",
            "U01SAM",
            "dm-sam",
            "dm",
            "Between us, I got diagnosed with chronic migraine.",
        )
        asked = await say(
            rt,
            "slack",
            "U02PRI",
            "general",
            "public",
            "Does Sam have migraine or other health issues?",
        )
        assert not any("migraine" in line for line in asked)
        asked = await say(
            rt, "slack", "U02PRI", "dm-priya", "dm", "Tell me about Sam's migraine diagnosis."
        )
        assert not any("migraine" in line for line in asked)
        # the person who told it may hear it back, on another host too (one person)
        own = await say(
            rt, "discord", "1001", "lounge", "public", "Remind me, what was my diagnosis? migraine?"
        )
        assert any("migraine" in line for line in own)


async def test_same_name_different_people_are_different_people(tmp_path):
    async with runtime(tmp_path) as rt:
        # two people named Sam on discord, neither linked: 1003 is not the linked Sam
        await say(
            rt,
            "discord",
            "1003",
            "dm-ortiz",
            "dm",
            "I haven't told anyone, but I'm going through a divorce.",
        )
        for user in ("1001", "1004"):
            asked = await say(rt, "discord", user, "dm-x", "dm", "Am I going through a divorce?")
            assert not any("divorce" in line for line in asked), user
        own = await say(
            rt, "discord", "1003", "dm-ortiz", "dm", "What did I tell you about my divorce?"
        )
        assert any("divorce" in line for line in own)


async def test_a_private_room_stays_in_its_room(tmp_path):
    async with runtime(tmp_path) as rt:
        await say(
            rt,
            "slack",
            "U01SAM",
            "design",
            "private",
            "I'm leading the secret redesign of the checkout.",
        )
        elsewhere = await say(
            rt, "slack", "U02PRI", "general", "public", "Who leads the checkout redesign?"
        )
        assert not any("redesign" in line for line in elsewhere)
        here = await say(
            rt, "slack", "U02PRI", "design", "private", "Who leads the checkout redesign?"
        )
        assert any("redesign" in line for line in here)
        public_fact = await say(
            rt, "slack", "U01SAM", "general", "public", "My birthday is March 14, cake please."
        )
        assert public_fact is not None
        anywhere = await say(
            rt, "slack", "U02PRI", "dm-priya", "dm", "When is Sam's birthday? March?"
        )
        assert any("March 14" in line for line in anywhere)


async def test_a_correction_supersedes_what_it_corrects(tmp_path):
    async with runtime(tmp_path) as rt:
        await say(
            rt,
            "slack",
            "U02PRI",
            "general",
            "public",
            "We live in Porto at the moment, it's great.",
        )
        await say(
            rt,
            "slack",
            "U02PRI",
            "general",
            "public",
            "Actually we moved again, we're in Valencia now, not Porto.",
        )
        recalled = await say(
            rt, "slack", "U02PRI", "general", "public", "Where do we live now, Porto or Valencia?"
        )
        entries = rt.memory.entries("maya")
    assert any("Valencia" in line for line in recalled)
    assert not any("live in Porto" in line for line in recalled)
    old = next(e for e in entries if "live in Porto" in e.text)
    new = next(e for e in entries if "Valencia" in e.text)
    assert old.superseded_by == new.id and new.supersedes == (old.id,)  # kept, linked
    assert new.kind == "correction"


async def test_recall_lines_carry_names_and_dates_not_host_ids(tmp_path):
    async with runtime(tmp_path) as rt:
        await say(rt, "slack", "U01SAM", "general", "public", "My sister Ada just moved to Lisbon.")
        recalled = await say(
            rt, "discord", "1001", "lounge", "public", "Where does my sister Ada live?"
        )
    [line] = [r for r in recalled if "Lisbon" in r]
    assert line.startswith("(20") and ", Sam)" in line
    assert "U01SAM" not in line and "slack:" not in line and "discord:" not in line


async def test_the_prompt_holds_only_scoped_memories(tmp_path):
    seen = []
    backend = ScriptedBackend(lambda req: seen.append(req.prompt) or "ok")
    async with runtime(tmp_path, backend) as rt:
        await say(rt, "slack", "U01SAM", "dm-sam", "dm", "Just between us: my salary is 90k now.")
        await say(rt, "slack", "U02PRI", "general", "public", "What is Sam's salary? 90k?")
        await anyio.sleep(0)
    assert "90k now" not in seen[-1]


async def test_a_change_of_plan_about_someone_else_supersedes_the_note(tmp_path):
    """Issue 21: a correction in the third person (no "I", "we", "my") was not extracted,
    and explicit notes skipped correction handling: the old plan was recalled first."""
    async with runtime(tmp_path) as rt:
        await say(
            rt, "slack", "U01SAM", "general", "public", "Remember that Dana's flight is on Tuesday."
        )
        await say(
            rt, "slack", "U01SAM", "general", "public", "Dana's flight was moved to Thursday."
        )
        recalled = await say(rt, "slack", "U01SAM", "general", "public", "When does Dana fly in?")
        entries = rt.memory.entries("maya")
    old = next(e for e in entries if "Tuesday" in e.text)
    new = next(e for e in entries if "Thursday" in e.text)
    assert old.superseded_by == new.id and new.kind == "correction"
    assert any("Thursday" in line for line in recalled)
    assert not any("Tuesday" in line for line in recalled)


async def test_a_correction_passed_on_by_someone_else_supersedes_what_they_said(tmp_path):
    """bench/eval: "Sam asked me to pass this on: the offsite is now in Bruges" (told by
    Priya) left Sam's "it'll be in Ghent" live: corrections only replaced the teller's own
    entries. A correction naming the person an entry came from replaces it too."""
    async with runtime(tmp_path) as rt:
        await say(
            rt, "slack", "U01SAM", "general", "public",
            "I'm organising the team offsite, it'll be in Ghent on the 12th.",
        )  # fmt: skip
        await say(
            rt, "slack", "U02PRI", "general", "public",
            "Sam asked me to pass this on: the offsite is now in Bruges instead.",
        )  # fmt: skip
        recalled = await say(rt, "slack", "U01SAM", "general", "public", "Where is the offsite?")
        entries = rt.memory.entries("maya")
    old = next(e for e in entries if "Ghent" in e.text)
    new = next(e for e in entries if "Bruges" in e.text)
    assert old.superseded_by == new.id
    assert any("Bruges" in line for line in recalled)
    assert not any("Ghent" in line for line in recalled)


async def test_nobody_can_correct_what_someone_said_in_private(tmp_path):
    async with runtime(tmp_path) as rt:
        await say(rt, "slack", "U01SAM", "dm-sam", "dm", "Between us: my flight home is on Friday.")
        await say(
            rt, "slack", "U02PRI", "general", "public",
            "Sam says his flight home is now on Monday, not Friday.",
        )  # fmt: skip
        entries = rt.memory.entries("maya")
    old = next(e for e in entries if "Friday" in e.text and "Between us" in e.text)
    assert old.superseded_by is None


async def test_an_explicit_note_that_corrects_supersedes_the_earlier_note(tmp_path):
    async with runtime(tmp_path) as rt:
        await say(
            rt, "slack", "U01SAM", "general", "public", "Remember that the standup is at nine."
        )
        await say(
            rt,
            "slack",
            "U01SAM",
            "general",
            "public",
            "Remember that the standup is now at ten, not nine.",
        )
        recalled = await say(rt, "slack", "U01SAM", "general", "public", "When is the standup?")
        entries = rt.memory.entries("maya")
    old = next(e for e in entries if "at nine." in e.text)
    new = next(e for e in entries if "ten" in e.text)
    assert old.superseded_by == new.id
    assert [line for line in recalled if "standup" in line] and not any(
        "at nine." in line for line in recalled
    )


async def test_a_request_to_be_reminded_is_kept_and_small_talk_is_not(tmp_path):
    async with runtime(tmp_path) as rt:
        await say(
            rt, "slack", "U01SAM", "general", "public",
            "Can you remind me to send the invoice to Dana on Friday?",
        )  # fmt: skip
        await say(
            rt, "slack", "U01SAM", "general", "public",
            "The weather was lovely at the beach this weekend, we had a great time.",
        )  # fmt: skip
        entries = rt.memory.entries("maya")
    kept = [e for e in entries if "invoice" in e.text]
    assert len(kept) == 1 and kept[0].kind == "commitment" and kept[0].commitments
    assert not [e for e in entries if "weather" in e.text]
