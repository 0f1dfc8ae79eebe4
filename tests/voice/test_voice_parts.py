"""The voice pipeline's pieces: cutting a reply into speakable pieces, reading a transcript
as finished or not, WAV in and out, the TTS engine registry."""

from __future__ import annotations

import numpy as np
import pytest

from continuum.errors import ContinuumError, UnknownPlugin
from continuum.plugins import tts_engine, tts_engines
from continuum.voice.audio import read_wav, resample, wav_bytes
from continuum.voice.chunker import SpeechChunker
from continuum.voice.vad import is_backchannel, reads_finished


def test_a_streaming_reply_is_cut_at_sentences_and_long_clauses():
    c = SpeechChunker(min_clause_words=4)
    pieces = []
    for delta in [
        "Sure",
        ". The cache",
        " is cold,",
        " so the first",
        " request, which is",
        " slow",
    ]:
        pieces += c.feed(delta)
    assert pieces == ["Sure.", "The cache is cold,", "so the first request,"]
    assert c.flush() == "which is slow"
    assert c.flush() is None
    # a short clause waits for more words; no punctuation at all is cut at a length bound,
    # shorter for the first piece (what the person is waiting for)
    c = SpeechChunker(min_clause_words=4, max_words=6, first_max_words=3)
    assert c.feed("Yes, ") == []
    assert c.feed("one two three four five six seven eight nine ten") == [
        "Yes, one two",
        "three four five six seven eight",
    ]


def test_a_pause_after_an_open_word_is_not_the_end_of_a_turn():
    assert reads_finished("What time is the meeting tomorrow?")
    assert reads_finished("Thanks, that's all.")
    assert not reads_finished("I was thinking about the.")  # Whisper adds a full stop
    assert not reads_finished("So I went to the store and")
    assert not reads_finished("Well, um...")
    assert not reads_finished("the cache layer,")
    assert not reads_finished("")
    # a verb that announces what comes next: a pause after it is a breath
    assert not reads_finished("Can you explain?")
    assert not reads_finished("Can you tell me?")
    assert reads_finished("Can you tell me the time?")


def test_backchannels_are_told_from_interruptions():
    for said in ["Mm-hmm.", "Uh-huh.", "Mm, mm, mm.", "Yeah.", "", "Okay, right."]:
        assert is_backchannel(said), said
    for said in ["Wait.", "Stop, that's wrong.", "way.", "No, the other one."]:
        assert not is_backchannel(said), said


def test_wav_round_trip_and_resampling():
    tone = np.sin(np.linspace(0, 440 * 2 * np.pi, 22050)).astype(np.float32) * 0.5
    back, rate = read_wav(wav_bytes(tone, 22050))
    assert rate == 22050 and np.allclose(back, tone, atol=1e-4)
    assert len(resample(back, 22050, 16000)) == 16000
    with pytest.raises(ContinuumError, match="not a PCM WAV"):
        read_wav(b"not audio at all")


def test_tts_engines_are_plugins_and_an_unknown_one_is_named():
    assert "espeak-ng" in tts_engines()
    with pytest.raises(UnknownPlugin, match=r"no TTS engine named 'nope'.*espeak-ng"):
        tts_engine("nope")
