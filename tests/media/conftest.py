"""Speech made with espeak-ng, the way a person's voice message arrives (WAV bytes)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest


def espeak_wav(text: str, path: Path, voice: str = "en-us", speed: int = 150) -> bytes:
    if shutil.which("espeak-ng") is None:
        pytest.fail("these tests speak with espeak-ng: sudo apt-get install espeak-ng")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True)
    return path.read_bytes()


@pytest.fixture(scope="session")
def transcriber():
    from continuum.errors import ContinuumError
    from continuum.media.whisper import INSTALL, WhisperTranscriber

    if importlib.util.find_spec("faster_whisper") is None:
        pytest.fail(f"speech-to-text is not installed: {INSTALL}", pytrace=False)
    try:
        return WhisperTranscriber()
    except ContinuumError as exc:  # the packaged model is missing: say how to install it
        pytest.fail(f"{exc} (or run ./scripts/test)", pytrace=False)
