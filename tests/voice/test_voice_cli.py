"""``continuum voice`` as a user runs it: a WAV in, the spoken reply out."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from continuum.voice.audio import read_wav
from tests.media.conftest import espeak_wav

pytestmark = pytest.mark.model
CLI = [sys.executable, "-m", "continuum"]


def test_voice_in_reply_out_with_the_stage_breakdown(tmp_path, model_path):
    question = tmp_path / "question.wav"
    espeak_wav("Hello Otto, what do you keep in your archive?", question)
    reply = tmp_path / "reply.wav"
    done = subprocess.run(
        [
            *CLI,
            "voice",
            "--in",
            str(question),
            "--out",
            str(reply),
            "--persona",
            "otto",
            "--fast",
            "--metrics",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "what do you keep" in done.stdout.lower().split("\n")[0]  # heard: ...
    samples, rate = read_wav(reply.read_bytes())
    assert rate == 22050 and len(samples) > rate // 4
    stages = json.loads(done.stdout[done.stdout.index("{") :])
    assert stages["path"] == "stt" and stages["stt_calls"] >= 1 and stages["tts_calls"] >= 1
    assert set(stages["ms_after_end_of_speech"]) >= {"end_of_turn", "first_token", "first_audio"}


def test_a_missing_or_broken_input_is_a_one_line_error(tmp_path):
    done = subprocess.run(
        [*CLI, "voice", "--in", str(tmp_path / "nope.wav"), "--out", str(tmp_path / "r.wav")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "nope.wav: no such file" in done.stderr
    assert "Traceback" not in done.stderr
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....not a wav")
    done = subprocess.run(
        [*CLI, "voice", "--in", str(bad), "--out", str(tmp_path / "r.wav")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "not a PCM WAV" in done.stderr
    assert "Traceback" not in done.stderr
