"""Audio and images in a room: the bridge turns them into text for a text-only model,
says which path ran and what it cost, and never drops them silently."""

from __future__ import annotations

import pytest

from continuum.envelope import AudioPart, Envelope, ImagePart, Participant, ReplyTarget, TextPart
from continuum.events import MediaBridged
from continuum.media import MediaBridge, ModelCapabilities
from continuum.persona import Persona
from continuum.room import Room, RoomPolicy
from continuum.testing import ScriptedBackend
from tests.media.conftest import espeak_wav

pytestmark = pytest.mark.anyio
SAM = Participant(id="sam", name="Sam")
MAYA = Persona(id="maya", name="Maya", identity="A performance engineer.")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def envelope(*parts, i=0):
    return Envelope(
        id=f"m{i}",
        host="test",
        room_id="r",
        author=SAM,
        parts=parts,
        reply_to=ReplyTarget(host="test", channel="r"),
    )


class Recorder:
    def __init__(self, text="the transcript"):
        self.text, self.calls = text, 0

    def transcribe(self, audio):
        self.calls += 1
        return self.text

    def describe(self, image):
        self.calls += 1
        return "a cat asleep on a keyboard"


async def test_each_path_is_chosen_by_what_the_model_takes_and_counted():
    stt, seer = Recorder(), Recorder()
    bridge = MediaBridge(stt, seer)
    audio, image = AudioPart(data=b"RIFF"), ImagePart(data=PNG)
    text_only = ModelCapabilities()
    b = await bridge.render((TextPart(text="listen"), audio), text_only)
    assert (b.path, b.stt_calls, b.text) == ("stt", 1, "listen\nthe transcript")
    b = await bridge.render((audio,), ModelCapabilities(audio_in=True))
    assert (b.path, b.stt_calls) == ("direct", 0) and stt.calls == 1
    b = await bridge.render((image,), text_only)
    assert (b.path, b.describe_calls) == ("describe", 1)
    assert b.text == "(shared an image: a cat asleep on a keyboard)"
    b = await bridge.render((image,), ModelCapabilities(vision_in=True))
    assert (b.path, b.describe_calls) == ("direct", 0)
    # nothing configured: said plainly, never an empty line
    b = await MediaBridge().render((audio, image), text_only)
    assert b.path == "told"
    assert b.text == "(sent a voice message you cannot hear)\n(shared an image you cannot see)"


async def test_a_voice_message_is_heard_through_speech_to_text(tmp_path, transcriber):
    wav = espeak_wav("Hello Maya. What time is the meeting tomorrow?", tmp_path / "q.wav")
    backend = ScriptedBackend(lambda req: "At ten.")
    room = Room(
        "r",
        [MAYA],
        backend,
        bridge=MediaBridge(transcriber),
        policy=RoomPolicy(cognition="direct"),
    )
    bridged = []
    room.events.subscribe(lambda e: bridged.append(e) if isinstance(e, MediaBridged) else None)
    before = transcriber.calls
    replies = await room.handle(envelope(AudioPart(data=wav)))
    assert replies and replies[0].message.text == "At ten."
    heard = room.history[0]
    assert heard.media == "stt" and heard.parts and heard.parts[0].data == wav
    assert "meeting" in heard.text.lower() and "tomorrow" in heard.text.lower()
    assert [(e.path, e.stt_calls) for e in bridged] == [("stt", 1)]
    assert transcriber.calls == before + 1
    # the persona's prompt holds what was said, not an empty line
    assert "meeting" in backend.requests[-1].prompt.lower()


async def test_audio_and_images_survive_the_routers_pending_store_as_json():
    env = envelope(TextPart(text="look"), ImagePart(data=PNG), AudioPart(data=b"\xff\x00RIFF"))
    again = Envelope.model_validate_json(env.model_dump_json())
    assert again == env


async def test_an_image_for_a_text_model_is_told_plainly_and_the_turn_goes_on():
    backend = ScriptedBackend(lambda req: "I cannot see it, sorry.")
    room = Room("r", [MAYA], backend, policy=RoomPolicy(cognition="direct"))
    await room.handle(envelope(TextPart(text="what is in this picture?"), ImagePart(data=PNG)))
    assert room.history[0].media == "told"
    assert "(shared an image you cannot see)" in backend.requests[-1].prompt


async def test_a_transcript_the_host_already_has_is_not_made_again():
    stt = Recorder()
    b = await MediaBridge(stt).render(
        (AudioPart(data=b"RIFF", transcript="heard by the host"),), ModelCapabilities()
    )
    assert (b.path, b.stt_calls, b.text, stt.calls) == ("stt", 0, "heard by the host", 0)


def test_a_describer_needs_its_model_and_its_projector(tmp_path):
    from continuum.config import parse_config
    from continuum.errors import ConfigError
    from continuum.runtime import media_bridge

    cfg = parse_config({"media": {"describer_model": "eyes.gguf"}}, tmp_path / "continuum.toml")
    with pytest.raises(ConfigError, match="describer_mmproj"):
        media_bridge(cfg.media, str(cfg.source), cfg.relative)
    missing = parse_config(
        {"media": {"describer_model": "eyes.gguf", "describer_mmproj": "eyes-mmproj.gguf"}},
        tmp_path / "continuum.toml",
    )
    with pytest.raises(Exception, match=r"eyes\.gguf|does not exist|not found"):
        media_bridge(missing.media, str(missing.source), missing.relative)
