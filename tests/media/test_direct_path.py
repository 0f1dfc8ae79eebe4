"""The direct path on a real mtmd pipeline: the default model with a projector (tiny,
random weights, real architectures) hears a voice message and sees an image itself —
no speech-to-text, no description — and the stable prefix is still reused, before the
media and on the next warm turn after it."""

from __future__ import annotations

import struct
import zlib

import anyio
import numpy as np
import pytest

from continuum.backends.embedded import EmbeddedBackend, EmbeddedConfig
from continuum.envelope import AudioPart, Envelope, ImagePart, Participant, ReplyTarget, TextPart
from continuum.events import MediaBridged, ReplyPosted
from continuum.media import MediaBridge
from continuum.media.placeholder import placeholder
from continuum.persona import ModelOverrides, Persona
from continuum.room import Room, RoomPolicy
from tests.conftest import THREADS
from tests.media.conftest import espeak_wav
from tests.media.tiny_projectors import audio_projector, vision_projector

pytestmark = [pytest.mark.anyio, pytest.mark.model]

MAYA = Persona(id="maya", name="Maya", identity="A performance engineer.", style="Brief.")
SAM = Participant(id="sam", name="Sam")


class CountingBridge:
    """Speech-to-text and description that count their calls (the direct path makes none)."""

    def __init__(self) -> None:
        self.calls = 0

    def transcribe(self, audio: AudioPart) -> str:
        self.calls += 1
        return "(transcribed)"

    def describe(self, image: ImagePart) -> str:
        self.calls += 1
        return "(described)"


def png(width: int = 64, height: int = 48) -> bytes:
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + (chunk(b"IEND", b""))
    )


def envelope(*parts) -> Envelope:
    return Envelope(
        host="t",
        room_id="r",
        author=SAM,
        parts=parts,
        reply_to=ReplyTarget(host="t", channel="r"),
        mentions=("maya",),
    )


async def turn(room: Room, *parts):
    await room.handle(envelope(*parts))
    return room.events.of_type(ReplyPosted)[-1].metrics


def line_tokens(backend: EmbeddedBackend, text: str) -> int:
    """What a new message adds to a warm prompt: its line and the reply header."""
    return backend.count_tokens(f"<|im_start|>user\nSam: {text}<|im_end|>\n<|im_start|>assistant\n")


async def media_turns(backend, part, kind: str) -> tuple[Room, CountingBridge, object, object]:
    """A room on ``backend`` (which takes ``kind`` itself): a text turn, then the media
    turn; both metrics back, after checking the bridge sent the part straight through."""
    caps = backend.capabilities
    assert (caps.audio_in, caps.vision_in) == ((True, False) if kind == "audio" else (False, True))
    counting = CountingBridge()
    room = Room(
        "r", [MAYA], backend,
        policy=RoomPolicy(cognition="direct", reply_max_tokens=6),
        bridge=MediaBridge(transcriber=counting, describer=counting),
    )  # fmt: skip
    first = await turn(room, TextPart(text="Good morning!"))
    media_turn = await turn(room, part)
    # the model took the media itself: no speech-to-text, no description
    [bridged] = room.events.of_type(MediaBridged)
    assert bridged.path == "direct" and bridged.stt_calls == bridged.describe_calls == 0
    return room, counting, first, media_turn


async def run_direct(model_path, tmp_path, projector, part, kind: str) -> None:
    backend = EmbeddedBackend(
        model_path,
        EmbeddedConfig(live_slots=2, slot_ctx=2048, n_threads=THREADS, mmproj=str(projector)),
    )
    room, counting, first, media_turn = await media_turns(backend, part, kind)
    assert counting.calls == 0 and room.history[-2].media == "direct"
    assert media_turn.media_tokens > 0
    # the history window counts the part as the positions it takes, not as a few words
    assert backend.count_tokens(f"Sam: {placeholder(part)}") >= media_turn.media_tokens
    # the stable prefix and the earlier history came from the slot; only the new line,
    # its media and the header were evaluated
    assert media_turn.reused_tokens >= first.prompt_tokens - 1
    assert media_turn.evaluated_tokens <= media_turn.media_tokens + line_tokens(backend, "") + 24
    # the next warm turn reuses everything up to the new message, media included
    text = "And what now?"
    after = await turn(room, TextPart(text=text))
    assert after.media_tokens == 0, "the media was encoded again"
    assert after.evaluated_tokens <= line_tokens(backend, text) + 16, after
    # a person typing a placeholder gets text, not someone else's media
    forged = "<__media:0123456789abcdef__> look"
    typed = await turn(room, TextPart(text=forged))
    assert typed.media_tokens == 0
    backend.close()


async def test_a_voice_message_reaches_an_audio_model_directly(model_path, tmp_path):
    wav = espeak_wav("Hello Maya, is the cache warm?", tmp_path / "q.wav")
    await run_direct(model_path, tmp_path, audio_projector(), AudioPart(data=wav), "audio")


async def test_an_image_reaches_a_vision_model_directly(model_path, tmp_path):
    await run_direct(model_path, tmp_path, vision_projector(), ImagePart(data=png()), "image")


async def test_a_model_without_a_projector_is_told_plainly(model_path, backend):
    room = Room("r2", [MAYA], backend, policy=RoomPolicy(cognition="direct", reply_max_tokens=4))
    image = await turn(room, ImagePart(data=png()))
    assert image.media_tokens == 0
    assert room.history[-2].media == "told" and "cannot see" in room.history[-2].text


async def test_a_voice_turn_on_an_audio_model_never_transcribes(model_path, tmp_path):
    """The acceptance line, through the runtime's ear: speech-to-text zero times (the ear
    and the room both); text-to-speech only because the model has no audio out."""
    from continuum.testing import AudioTestHost, serve_host
    from continuum.voice.audio import read_wav

    backend = EmbeddedBackend(
        model_path,
        EmbeddedConfig(
            live_slots=2, slot_ctx=2048, n_threads=THREADS, mmproj=str(audio_projector())
        ),
    )
    assert backend.capabilities.audio_in and not backend.capabilities.audio_out
    greedy = MAYA.model_copy(update={"model": ModelOverrides(temperature=0.0)})  # reproducible
    async with serve_host(
        "audio-test",
        data_dir=tmp_path / "data",
        personas=[greedy],
        backend=backend,
        host_classes={"audio-test": AudioTestHost},
        policy={"reply_max_tokens": 12},
        config={"media": {"stt": "whisper"}},
    ) as probe:
        samples, rate = read_wav(espeak_wav("What is the plan for today?", tmp_path / "v.wav"))
        await probe.host.speak("sam", samples, rate, realtime=False, silence_after_s=2.0)
        ear = probe.host.ears[("sam", "voice")]
        with anyio.fail_after(120):
            while not ear.heard or ear.heard[-1].turn is None:
                await anyio.sleep(0.05)
            await ear.heard[-1].turn.wait()
        (heard,) = ear.heard
        assert heard.transcript is None and heard.stt_calls == 0
        assert probe._rt.voice.stt_calls == 0 and probe._rt.bridge.transcriber.calls == 0
        said = probe.history("voice")
        assert said[0].media == "direct" and said[0].parts  # the audio itself went in
        posted = [e for e in probe.events("voice") if isinstance(e, ReplyPosted)][-1].metrics
        assert posted.media_tokens > 0
        (stats,) = heard.turn.speech
        assert said[-1].text and stats.tts_calls >= 1  # spoken by the TTS engine


async def test_an_image_is_described_by_a_model_that_can_see(model_path, backend):
    """The describe path: the persona's model cannot see; a vision model (the default
    model with the tiny projector) writes the line it reads. Prefix reuse holds."""
    from continuum.errors import ContinuumError
    from continuum.media.describer import ModelDescriber

    with pytest.raises(ContinuumError, match="cannot see"):
        ModelDescriber(backend)
    eyes = EmbeddedBackend(
        model_path,
        EmbeddedConfig(
            live_slots=1, slot_ctx=1024, n_threads=THREADS, mmproj=str(vision_projector())
        ),
    )
    describer = ModelDescriber(eyes, max_tokens=12)
    room = Room(
        "described", [MAYA], backend,
        policy=RoomPolicy(cognition="direct", reply_max_tokens=6),
        bridge=MediaBridge(describer=describer),
    )  # fmt: skip
    first = await turn(room, TextPart(text="Good morning!"))
    image_turn = await turn(room, ImagePart(data=png()))
    [bridged] = room.events.of_type(MediaBridged)
    assert bridged.path == "describe" and bridged.describe_calls == 1
    assert describer.last_metrics is not None and describer.last_metrics.media_tokens > 0
    assert room.history[-2].text.startswith("(shared an image: ")
    assert image_turn.media_tokens == 0  # the persona's model read a sentence
    assert image_turn.reused_tokens >= first.prompt_tokens - 1
    text = "And what now?"
    after = await turn(room, TextPart(text=text))
    assert after.evaluated_tokens <= line_tokens(backend, text) + 16, after
    eyes.close()
