"""Speech-to-text told the personas' names: a person who names a persona over a voice call
(Opus, as LiveKit and Discord carry it) is heard naming it, and a hum Whisper would fill
with those names is heard again without them."""

from __future__ import annotations

import io

import numpy as np
import pytest

from continuum.addressing import addressed
from continuum.errors import ContinuumError
from continuum.media.whisper import WhisperTranscriber, decode
from continuum.persona import Persona
from continuum.voice.audio import read_wav, resample
from tests.media.conftest import espeak_wav

NAMES = ("Maya", "Victor", "Peter", "Sarah", "Emma", "David")
PERSONAS = [Persona(id=n.lower(), name=n, identity=f"{n}, a colleague.") for n in NAMES]


@pytest.fixture(scope="module")
def whisper() -> WhisperTranscriber:
    try:
        t = WhisperTranscriber()
        t._load()
    except ContinuumError as exc:
        pytest.fail(f"{exc} (or run ./scripts/test)", pytrace=False)
    return t


def over_a_call(wav: bytes, shift: int) -> np.ndarray:
    """``wav`` as a listener on a call gets it: 48 kHz, Opus at 32 kb/s in 20 ms frames,
    starting ``shift`` samples into a frame."""
    import av

    samples, rate = read_wav(wav)
    x = np.concatenate([np.zeros(4800 + shift, np.float32), resample(samples, rate, 48_000)])
    pcm = (np.clip(x, -1, 1) * 32767).astype(np.int16)
    out = io.BytesIO()
    with av.open(out, "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=48_000)
        stream.layout, stream.bit_rate = "mono", 32_000
        for i in range(0, len(pcm) // 960 * 960, 960):
            frame = av.AudioFrame.from_ndarray(pcm[i : i + 960].reshape(1, -1), "s16", "mono")
            frame.sample_rate, frame.pts = 48_000, i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return decode(out.getvalue())


@pytest.mark.parametrize("shift", [0, 240, 600])
def test_names_said_over_a_call_are_heard(whisper, tmp_path, shift):
    said = "Maya and David, please check the database link."
    wav = espeak_wav(said, tmp_path / "q.wav", speed=140)
    text, _ = whisper.transcribe_scored(over_a_call(wav, shift), vocabulary=NAMES)
    assert addressed(text, PERSONAS) == ("maya", "david"), text


def test_a_hum_is_not_heard_as_names(whisper, tmp_path):
    wav = espeak_wav("mm hmm", tmp_path / "hum.wav", speed=140)
    for shift in (0, 240, 600):
        text, _ = whisper.transcribe_scored(over_a_call(wav, shift), vocabulary=NAMES)
        assert not addressed(text, PERSONAS) and len(text) < 20, text
