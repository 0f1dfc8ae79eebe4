"""Personas in a room on a real LiveKit server (loopback), heard and answered through the
real ``livekit`` SDK on both sides: a test participant speaks espeak-ng speech, the
runtime's one listener hears it (Silero, Whisper tiny.en), shared cognition picks who
answers, the persona speaks on its own track, and the test participant hears it."""

from __future__ import annotations

import functools
import itertools
import time

import anyio
import pytest
from livekit_testkit import ROOM, Person, espeak, hears_everyone, room_state, serving, until

from continuum.envelope import ParticipantKind
from continuum.persona import Persona, VoiceSpec

pytestmark = pytest.mark.anyio


def persona(pid: str, name: str, voice: str, pitch: int, *expertise: str) -> Persona:
    return Persona(
        id=pid,
        name=name,
        identity=f"{name}, a colleague.",
        expertise=expertise,
        voice=VoiceSpec(voice=voice, pitch=pitch),
    )


MAYA = persona("maya", "Maya", "en-us+f3", 70, "performance", "caching")
VICTOR = persona("victor", "Victor", "en-gb+m2", 25, "security")
SIX = (
    MAYA,
    VICTOR,
    persona("peter", "Peter", "en-us+m3", 35, "databases"),
    persona("sarah", "Sarah", "en-us+f1", 55, "networking"),
    persona("emma", "Emma", "en-us+f2", 60, "design"),
    persona("david", "David", "en-gb+m1", 40, "testing"),
)
ANSWER = "The cache hit rate was ninety percent yesterday."


async def test_a_spoken_question_is_answered_on_the_personas_own_track_with_captions(
    tmp_path, livekit_server, transcriber
):
    async with serving(tmp_path, livekit_server, (MAYA, VICTOR), lambda req: ANSWER) as probe:
        person = await Person(livekit_server).join()
        try:
            await hears_everyone(person, probe, (MAYA, VICTOR))
            said = espeak(tmp_path, "Maya, what was the cache hit rate yesterday?")
            await person.speak(said, then_silence_s=1.5)
            await until(lambda: probe.stats["answered"] >= 1, timeout=60)
            await until(lambda: any(c.sender == "" or c.text for c in person.captions
                                    if c.attributes.get("lk.segment_id")), timeout=10)  # fmt: skip
            await anyio.sleep(4)  # the reply plays out
            # the person was heard once, as Sam, by the one listener
            [heard] = probe.said_by_people(ROOM)
            assert heard.author.name == "Sam" and "rate yesterday" in heard.text.lower()
            # Maya answered, on her own track; Victor's track stayed quiet
            replies = [m for m in probe.history(ROOM) if m.author.kind == ParticipantKind.PERSONA]
            assert [m.author.id for m in replies] == ["maya"]
            assert person.speaking() == ["maya"]
            words = transcriber.transcribe(person.heard["maya"].audio().astype("float32"))
            words = words.lower()
            assert "yesterday" in words, words  # (Whisper tiny on espeak: "cache" varies)
            assert "90" in words or "ninety" in words, words
            # captions: what Sam said, on Sam's track; what Maya said, on Maya's track,
            # each closed final
            tracks = {p.identity: [t.sid for t in p.track_publications.values()]
                      for p in person.room.remote_participants.values()}  # fmt: skip
            by_track = {c.attributes.get("lk.transcribed_track_id"): c for c in person.captions}
            sam = by_track[person.mic_sid]
            assert "rate yesterday" in sam.text.lower()
            maya = next(c for sid, c in by_track.items() if sid in tracks["maya"])
            assert maya.text == ANSWER
            assert sam.attributes["lk.transcription_final"] == "true"
            assert maya.attributes["lk.transcription_final"] == "true"
            # the personas are their own participants, named; the listener is hidden
            names = {p.identity: p.name for p in person.room.remote_participants.values()}
            assert names == {"maya": "Maya", "victor": "Victor"}
        finally:
            await person.leave()


async def test_typed_chat_is_answered_like_a_message(tmp_path, livekit_server):
    async with serving(tmp_path, livekit_server, (MAYA, VICTOR), lambda req: ANSWER) as probe:
        person = await Person(livekit_server).join()
        try:
            await hears_everyone(person, probe, (MAYA, VICTOR))
            await person.chat("Victor, is the login endpoint rate limited?")
            await until(lambda: probe.stats["answered"] >= 1, timeout=30)
            [message] = probe.said_by_people(ROOM)
            assert message.text == "Victor, is the login endpoint rate limited?"
            assert message.author.name == "Sam"
            await until(lambda: person.heard["victor"].loud(), timeout=20)
            assert not person.heard["maya"].loud()
        finally:
            await person.leave()


LONG = (
    "First, measure the cold start with the cache empty. Then look at the hit rate over a "
    "whole day of traffic. After that, compare the two builds side by side on one machine. "
    "Finally, write the numbers down and share them with the team."
)


async def test_speaking_over_a_persona_stops_it_and_history_keeps_what_was_heard(
    tmp_path, livekit_server
):
    async with serving(tmp_path, livekit_server, (MAYA,), lambda req: LONG) as probe:
        person = await Person(livekit_server).join()
        try:
            await hears_everyone(person, probe, (MAYA,))
            await person.speak(espeak(tmp_path, "Maya, how do I measure the cache?"), 0.2)
            maya = person.heard["maya"]
            await until(lambda: maya.loud(), timeout=60)
            await anyio.sleep(1.5)  # she is mid-reply
            interrupt = espeak(tmp_path, "Wait, stop, that is not what I asked about.")
            started = time.monotonic()
            await person.speak(interrupt, then_silence_s=1.5)
            await until(lambda: probe.stats["answered"] + probe.stats["cancelled"] >= 2, 60)
            # Maya's track went quiet soon after Sam started speaking (the whole reply is
            # ~12 s of speech; she was cut after ~2)
            first_span = maya.spans()[0]
            assert first_span[1] - started < 1.0, first_span[1] - started
            cut = next(m for m in probe.history(ROOM) if m.author.id == "maya")
            assert cut.text.endswith("—") and len(cut.text) < len(LONG) / 2, cut.text
            assert LONG.startswith(cut.text.rstrip("—").rsplit(" ", 1)[0])
        finally:
            await person.leave()


async def test_six_personas_only_the_named_ones_speak_and_never_at_once(tmp_path, livekit_server):
    def reply(req) -> str:  # each persona's prompt holds its own identity line
        me = next((p for p in SIX if f"{p.name}, a colleague." in req.prompt), None)
        return f"{me.name} here, I had a look at that earlier today." if me else "{}"

    async with serving(tmp_path, livekit_server, SIX, reply) as probe:
        person = await Person(livekit_server).join()
        try:
            await hears_everyone(person, probe, SIX)
            # (names Whisper tiny hears right in espeak-ng's voice)
            said = espeak(tmp_path, "Peter and Sarah, please check the database link.")
            await person.speak(said, then_silence_s=1.5)
            state = functools.partial(room_state, probe, person)
            await until(lambda: probe.stats["answered"] >= 1, timeout=60, state=state)
            await until(lambda: len(person.speaking()) >= 2, timeout=30, state=state)
            await anyio.sleep(3)
            assert person.speaking() == ["peter", "sarah"]
            spans = sorted(s for pid in ("peter", "sarah") for s in person.heard[pid].spans())
            for (_, end), (start, _) in itertools.pairwise(spans):
                assert start >= end, spans  # one after the other, never at once
            replies = [m.author.id for m in probe.history(ROOM)
                       if m.author.kind == ParticipantKind.PERSONA]  # fmt: skip
            assert sorted(replies) == ["peter", "sarah"]
        finally:
            await person.leave()


async def test_after_a_server_restart_the_personas_rejoin_and_the_room_goes_on(
    tmp_path, livekit_server
):
    async with serving(tmp_path, livekit_server, (MAYA,), lambda req: ANSWER) as probe:
        person = await Person(livekit_server).join()
        await hears_everyone(person, probe, (MAYA,))
        await person.leave()
        presence = probe.host.rooms[ROOM].seats["maya"].presence
        listener = probe.host.rooms[ROOM].listener_presence
        livekit_server.stop()
        await until(lambda: presence.room is None and listener.room is None, timeout=30)
        livekit_server.start()  # same ports, same key: the personas find it again
        await until(lambda: presence.rejoins >= 1 and listener.rejoins >= 1, timeout=60)
        person = await Person(livekit_server).join()
        try:
            await hears_everyone(person, probe, (MAYA,))
            await person.speak(espeak(tmp_path, "Maya, are you back?"), then_silence_s=1.5)
            await until(lambda: probe.stats["answered"] >= 1, timeout=60)
            await until(lambda: person.heard["maya"].loud(), timeout=20)
        finally:
            await person.leave()


def test_the_token_command_mints_a_token_for_the_room(tmp_path, monkeypatch, capsys):
    import jwt

    from continuum.cli import main

    monkeypatch.setenv("LIVEKIT_API_KEY", "k1")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "s" * 32)
    monkeypatch.setenv("LIVEKIT_URL", "wss://example.livekit.cloud")
    with pytest.raises(SystemExit) as done:
        main(["livekit", "token", "standup", "Ada Lovelace", "--config", str(tmp_path / "x.toml")])
    assert done.value.code == 0
    out = capsys.readouterr().out
    token = out.split()[0]
    claims = jwt.decode(token, "s" * 32, algorithms=["HS256"])
    assert claims["sub"] == "ada-lovelace" and claims["name"] == "Ada Lovelace"
    assert claims["video"] == {"roomJoin": True, "room": "standup", "canPublish": True,
                               "canSubscribe": True, "canPublishData": True}  # fmt: skip
    assert "meet.livekit.io/custom?liveKitUrl=wss%3A%2F%2Fexample.livekit.cloud" in out


def test_the_token_command_refuses_a_personas_identity(tmp_path, monkeypatch, capsys):
    from continuum.cli import main

    monkeypatch.setenv("LIVEKIT_API_KEY", "k1")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "s" * 32)
    # a person joining as "maya" would knock the persona Maya out of the room (LiveKit
    # keeps one participant per identity)
    with pytest.raises(SystemExit) as done:
        main(["livekit", "token", "standup", "Maya", "--config", str(tmp_path / "x.toml")])
    assert done.value.code == 2
    assert "identity 'maya' is taken" in capsys.readouterr().err


def test_a_missing_server_url_or_key_names_what_to_set(monkeypatch):
    from continuum.errors import ConfigError
    from continuum_livekit.config import LiveKitConfig

    monkeypatch.delenv("LIVEKIT_URL", raising=False)
    monkeypatch.delenv("LIVEKIT_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="LIVEKIT_URL"):
        LiveKitConfig().server_url()
    with pytest.raises(ConfigError, match="LIVEKIT_API_KEY"):
        LiveKitConfig(url="ws://127.0.0.1:7880").credentials()
    with pytest.raises(ValueError, match="ws://"):
        LiveKitConfig(url="127.0.0.1:7880")
