"""Media that is broken, hostile or huge never takes the rest of a message with it: the
text beside a broken voice message still reaches the persona, the broken part is named,
and speech-to-text refuses hours of audio before decoding it (hardening, second pass)."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from continuum.envelope import AudioPart, Envelope, Participant, ReplyTarget, TextPart
from continuum.errors import MediaTooLong
from continuum.media import MediaBridge
from continuum.media.whisper import WhisperTranscriber, decode
from continuum.persona import Persona
from continuum.room import Room, RoomPolicy
from continuum.testing import ScriptedBackend
from tests.media.conftest import espeak_wav

pytestmark = pytest.mark.anyio
MAYA = Persona(id="maya", name="Maya", identity="A performance engineer.")
QUESTION = "Also, what time is the standup tomorrow?"


def wav_of(seconds: float, rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.zeros(int(seconds * rate), dtype=np.int16).tobytes())
    return buf.getvalue()


def envelope(*parts):
    return Envelope(
        host="test",
        room_id="r",
        author=Participant(id="sam", name="Sam"),
        parts=parts,
        reply_to=ReplyTarget(host="test", channel="r"),
    )


@pytest.mark.parametrize(
    ("label", "audio"),
    [
        ("empty", b""),
        ("not audio", b"%PDF-1.7 this is not a sound at all" * 20),
        ("png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64),
    ],
)
async def test_a_broken_voice_message_is_named_and_the_text_goes_on(transcriber, label, audio):
    """Before: the transcriber's error failed the whole message; nothing was posted."""
    backend = ScriptedBackend(lambda req: "At ten.")
    room = Room(
        "r", [MAYA], backend, bridge=MediaBridge(transcriber), policy=RoomPolicy(cognition="direct")
    )
    replies = await room.handle(envelope(TextPart(text=QUESTION), AudioPart(data=audio)))
    assert [r.message.text for r in replies] == ["At ten."]
    prompt = backend.requests[-1].prompt
    assert QUESTION in prompt
    assert "(sent a voice message that could not be played)" in prompt


async def test_a_truncated_voice_message_still_lets_the_question_through(tmp_path, transcriber):
    whole = espeak_wav("Hello Maya, this message is cut short.", tmp_path / "q.wav")
    backend = ScriptedBackend(lambda req: "At ten.")
    room = Room(
        "r", [MAYA], backend, bridge=MediaBridge(transcriber), policy=RoomPolicy(cognition="direct")
    )
    replies = await room.handle(envelope(TextPart(text=QUESTION), AudioPart(data=whole[:300])))
    assert replies and QUESTION in backend.requests[-1].prompt


def test_speech_to_text_refuses_long_audio_before_decoding_it():
    """A 10-minute recording against a 60 s limit: refused from the container's declared
    duration, never decoded (before: a 1 h WAV took 3.6 GB)."""
    with pytest.raises(MediaTooLong, match="600 s long"):
        decode(wav_of(600), max_seconds=60)
    samples = decode(wav_of(30), max_seconds=60)  # within the limit: decoded, at 16 kHz
    assert len(samples) == 30 * 16_000


def ogg_opus(seconds: float, rate: int = 48000) -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=rate, layout="mono")
        n = stream.codec_context.frame_size or 960
        for i in range(int(seconds * rate / n)):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, n), dtype=np.float32), format="flt", layout="mono"
            )
            frame.sample_rate, frame.pts = rate, i * n
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def test_decoding_stops_at_the_limit_when_the_declared_duration_lies():
    """A chained Ogg (a minute of Opus, then 2 s) declares 2 s, its last chain's length:
    the header check passes it, and decoding stops once the limit is passed."""
    import av

    lying = ogg_opus(60) + ogg_opus(2)
    with av.open(io.BytesIO(lying)) as c:
        assert c.duration / av.time_base < 5  # what it declares
    with pytest.raises(MediaTooLong, match="at least"):
        decode(lying, max_seconds=10)


async def test_a_voice_message_over_the_limit_is_named_not_heard():
    transcriber = WhisperTranscriber(max_audio_s=60)
    backend = ScriptedBackend(lambda req: "Noted.")
    room = Room(
        "r", [MAYA], backend, bridge=MediaBridge(transcriber), policy=RoomPolicy(cognition="direct")
    )
    await room.handle(envelope(TextPart(text=QUESTION), AudioPart(data=wav_of(600))))
    prompt = backend.requests[-1].prompt
    assert QUESTION in prompt and "(sent a voice message too long to listen to)" in prompt
    assert transcriber._model is None  # the model was never even loaded for it


def bomb_png(side: int = 100_000) -> bytes:
    """A PNG header declaring side × side pixels (40 GB decoded), with a tiny body."""
    import struct
    import zlib

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    body = b"IHDR" + header
    ihdr = struct.pack(">I", len(header)) + body + struct.pack(">I", zlib.crc32(body))
    idat = zlib.compress(b"\x00" * 4096)
    return b"\x89PNG\r\n\x1a\n" + ihdr + struct.pack(">I", len(idat)) + b"IDAT" + idat


@pytest.mark.model
async def test_a_broken_image_fails_once_and_is_never_sent_again(model_path):
    """A vision model with its projector: a truncated PNG, an SVG and a PNG bomb each fail
    in the projector; the turn goes on without it, and later turns never resend it
    (before: the part stayed in the window and every later turn of the room failed)."""
    from continuum.backends.embedded import EmbeddedBackend, EmbeddedConfig
    from continuum.envelope import ImagePart
    from continuum.events import TurnFailed
    from tests.conftest import THREADS
    from tests.media.test_direct_path import png
    from tests.media.tiny_projectors import vision_projector

    backend = EmbeddedBackend(
        model_path,
        EmbeddedConfig(
            live_slots=2, slot_ctx=2048, n_threads=THREADS, mmproj=str(vision_projector())
        ),
    )
    requests = []
    real_complete = backend.complete

    async def complete(request, on_token=None):  # records what reaches the model
        requests.append(request)
        return await real_complete(request, on_token)

    backend.complete = complete
    room = Room("r", [MAYA], backend, policy=RoomPolicy(cognition="direct", reply_max_tokens=4))
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="9e9" height="9e9"></svg>'
    try:
        for broken in (png()[:60], svg, bomb_png()):
            replies = await room.handle(envelope(TextPart(text="look"), ImagePart(data=broken)))
            assert replies and replies[0].error is None, replies
            assert "(shared an image that could not be opened)" in requests[-1].prompt
            replies = await room.handle(envelope(TextPart(text="and now?")))
            assert replies and replies[0].error is None
            assert requests[-1].media == {} and "<__media:" not in requests[-1].prompt
        assert not room.events.of_type(TurnFailed)
        good = await room.handle(envelope(TextPart(text="this one?"), ImagePart(data=png())))
        assert good and good[0].error is None and requests[-1].media  # a good one still goes
    finally:
        backend.close()
