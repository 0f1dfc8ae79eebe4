"""Labelled utterances for end-of-turn detection: two sets written apart, so thresholds
chosen on one are measured on the other.

Each utterance is spoken in pieces joined by real silences: a pause inside the turn
(after a word that promises more, or a hesitation) is labelled *not finished*; the end
of the last piece is *finished*. Some utterances have no pause at all.

- ``CALIBRATION``: espeak-ng voices (en-us, en-gb+m3, en-us+f2), 160 wpm.
- ``HELD_OUT``: other sentences by other phrasing, spoken by Piper's "joe" voice (a
  neural voice with natural prosody) where Piper is installed, and espeak-ng voices
  not used for calibration (en-us+m1, en-gb+f3) at 140 wpm.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from continuum.voice.audio import RATE, read_wav, resample

CALIBRATION: list[tuple[tuple[str, ...], int]] = [
    (("I was going to ask about", "the deploy script we use on Fridays."), 600),
    (("Could you check whether", "the backup finished last night?"), 500),
    (("The thing that worries me is", "how slow the search has become."), 700),
    (("We need to decide if", "we keep the old server running."), 800),
    (("Um", "what was the name of that library?"), 600),
    (("So the plan for today is to", "clean up the logging code."), 500),
    (("My question is about the", "memory use of the worker."), 700),
    (("I think that we should", "try it with a smaller batch."), 600),
    (("Could you explain how", "the retry logic works?"), 400),
    (("When I run the tests on my", "laptop they take forever."), 800),
    (("What happens if", "two people edit the same file?"), 500),
    (("The error shows up only when", "the cache is empty."), 700),
    (("Where do the logs go?",), 0),
    (("How long does the build take now?",), 0),
    (("That sounds good to me.",), 0),
    (("Can we ship it on Monday?",), 0),
    (("Which branch should I use?",), 0),
    (("Thanks, that answers it.",), 0),
    (("Why does the job fail at midnight?",), 0),
]

HELD_OUT: list[tuple[tuple[str, ...], int]] = [
    (("Yesterday the dashboard showed", "a strange spike around noon."), 600),
    (("Do you remember which", "version we shipped in March?"), 500),
    (("Before we start I want to", "go over the numbers again."), 700),
    (("Er", "is the staging server down again?"), 600),
    (("It would help if you could", "write down the steps for me."), 800),
    (("The reason I am asking is that", "my manager wants a date."), 500),
    (("Can you walk me through", "how the queue is drained?"), 700),
    (("One of the customers said that", "the export is missing rows."), 600),
    (("I am not sure whether", "the fix made it into the release."), 400),
    (("Most of the time is spent in", "parsing the input files."), 800),
    (("How would you", "split this service in two?"), 600),
    (("If the disk fills up", "does the job stop or crash?"), 500),
    (("Is the new index faster?",), 0),
    (("Who owns the billing code?",), 0),
    (("Let us try that tomorrow.",), 0),
    (("What did the profiler show?",), 0),
    (("I fixed the flaky test.",), 0),
    (("Should we add another cache?",), 0),
]


@dataclass
class Labelled:
    text: str
    voice: str
    samples: np.ndarray  # 16 kHz mono
    pauses: list[tuple[int, int]]  # (start, end) samples of each pause inside the turn
    end: int  # the last speech sample (the true end of turn)
    paused: bool


def _trim(samples: np.ndarray) -> np.ndarray:
    loud = np.nonzero(np.abs(samples) > 0.01)[0]
    return samples[loud[0] : loud[-1] + 1] if len(loud) else samples


def _espeak(text: str, voice: str, wpm: int, tmp: Path) -> np.ndarray:
    path = tmp / "s.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(path), text], check=True)
    samples, rate = read_wav(path.read_bytes())
    return resample(samples, rate)


def _speaker(voice: str, wpm: int):
    if voice == "piper:joe":
        from continuum.persona import VoiceSpec
        from continuum.voice.piper import PiperTTS

        tts = PiperTTS()

        def piper(text: str, tmp: Path) -> np.ndarray:
            samples, rate = tts.synthesize(text, VoiceSpec(engine="piper", voice="joe"))
            return resample(samples, rate)

        return piper
    return lambda text, tmp: _espeak(text, voice, wpm, tmp)


def build(items: list[tuple[tuple[str, ...], int]], voices: list[str], wpm: int) -> list[Labelled]:
    if shutil.which("espeak-ng") is None:
        raise SystemExit("the labelled sets are spoken with espeak-ng: apt-get install espeak-ng")
    tmp = Path(tempfile.mkdtemp())
    out = []
    for i, (pieces, pause_ms) in enumerate(items):
        voice = voices[i % len(voices)]
        say = _speaker(voice, wpm)
        audio = [np.zeros(RATE // 5, np.float32)]  # 200 ms of room before the speech
        pauses = []
        for k, piece in enumerate(pieces):
            if k:
                start = sum(len(a) for a in audio)
                audio.append(np.zeros(RATE * pause_ms // 1000, np.float32))
                pauses.append((start, start + RATE * pause_ms // 1000))
            audio.append(_trim(say(piece, tmp)))
        samples = np.concatenate(audio).astype(np.float32)
        out.append(Labelled(" ".join(pieces), voice, samples, pauses, len(samples), bool(pauses)))
    return out


def held_out_voices() -> list[str]:
    try:
        from continuum.voice.piper import PiperTTS

        PiperTTS()
        return ["piper:joe", "en-us+m1", "en-gb+f3"]
    except Exception:  # Piper is an opt-in extra (GPL): espeak-ng voices only
        return ["en-us+m1", "en-gb+f3"]


def calibration_set() -> list[Labelled]:
    return build(CALIBRATION, ["en-us", "en-gb+m3", "en-us+f2"], 160)


def held_out_set() -> list[Labelled]:
    return build(HELD_OUT, held_out_voices(), 140)
