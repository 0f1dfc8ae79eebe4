"""Speech made with espeak-ng, the way a person's voice message arrives (WAV bytes)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def espeak_wav(text: str, path: Path, voice: str = "en-us", speed: int = 150) -> bytes:
    if shutil.which("espeak-ng") is None:
        pytest.fail("these tests speak with espeak-ng: sudo apt-get install espeak-ng")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True)
    return path.read_bytes()
