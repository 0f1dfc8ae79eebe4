"""Both TTS engines speak intelligibly (heard back through Whisper) and honour speed."""

from __future__ import annotations

import re

import pytest

from continuum.errors import ContinuumError
from continuum.persona import VoiceSpec
from continuum.plugins import tts_engine
from continuum.voice.audio import resample

SENTENCE = "Please measure the latency twice before you change the cache."


@pytest.mark.parametrize(("engine", "voice"), [("espeak-ng", "en-us+f3"), ("piper", "joe")])
def test_each_engine_is_heard_back_and_honours_speed(engine, voice, transcriber):
    tts = tts_engine(engine)
    samples, rate = tts.synthesize(SENTENCE, VoiceSpec(engine=engine, voice=voice))
    assert rate == tts.capabilities.sample_rate and len(samples) > rate  # over a second
    heard = set(re.findall(r"[a-z']+", transcriber.transcribe(resample(samples, rate)).lower()))
    words = re.findall(r"[a-z']+", SENTENCE.lower())
    assert sum(w in heard for w in words) >= 0.7 * len(words), heard
    fast, _ = tts.synthesize(SENTENCE, VoiceSpec(engine=engine, voice=voice, speed=1.6))
    assert len(fast) < 0.8 * len(samples)


def test_an_unknown_voice_is_a_clear_error():
    with pytest.raises(ContinuumError, match="no Piper voice at"):
        tts_engine("piper").synthesize("hi", VoiceSpec(engine="piper", voice="/nope.onnx"))
    with pytest.raises(ContinuumError, match="espeak-ng could not speak"):
        tts_engine("espeak-ng").synthesize("hi", VoiceSpec(voice="xx-nonexistent"))
